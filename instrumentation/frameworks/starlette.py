"""FastAPI and Starlette: the Narrows ASGI middleware goes outside the whole stack.

Wrapping ``build_middleware_stack`` (rather than ``add_middleware``) puts it outside
``ServerErrorMiddleware``, so a crash is seen as the 500 the client gets, and works even
after the app has started (the stack is rebuilt on the next request).

Recent FastAPI releases carry their own OpenTelemetry instrumentation, which switches
itself on as soon as a global tracer or logger provider exists, i.e. after
``configure()``: a second SERVER span plus spans for dependency resolution, the
endpoint and serialization (five spans a request). Narrows switches it off for the apps
it instruments (the setting ``FastAPI(telemetry=...)`` takes, changed in place) so each
request has one SERVER span, the same as Flask and Django get.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from instrumentation.frameworks.asgi import NarrowsASGIMiddleware
from instrumentation.server import ServerTelemetry

__all__ = ["disable_native_telemetry", "instrument_starlette", "patch_app_class"]

_MARK = "_narrows_instrumented"


def disable_native_telemetry(app: Any) -> None:
    """Turn off FastAPI's built-in telemetry for ``app`` (no-op for Starlette/older FastAPI)."""
    config = getattr(app, "_telemetry", None)
    if isinstance(config, dict):
        config.update(tracing=False, metrics=False, logs=False, operation_spans=False)


def instrument_starlette(
    app: Any, server: ServerTelemetry | Callable[[], ServerTelemetry | None]
) -> None:
    """Wrap one app instance (idempotent)."""
    disable_native_telemetry(app)
    if getattr(app, _MARK, False):
        return
    build = app.build_middleware_stack

    def build_middleware_stack() -> Any:
        return NarrowsASGIMiddleware(build(), server)

    app.build_middleware_stack = build_middleware_stack
    app.middleware_stack = None
    setattr(app, _MARK, True)


def patch_app_class(cls: Any, server: Callable[[], ServerTelemetry | None]) -> None:
    """Zero-code: every app of ``cls`` (Starlette or FastAPI) created from now on is
    instrumented at the end of its ``__init__``, exactly as ``instrument(app)`` does."""
    if cls.__dict__.get("_narrows_patched", False):
        return
    original = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        instrument_starlette(self, server)

    cls.__init__ = __init__
    cls._narrows_patched = True
