"""FastAPI and Starlette: the Narrows ASGI middleware goes outside the whole stack.

Wrapping ``build_middleware_stack`` (rather than ``add_middleware``) puts it outside
``ServerErrorMiddleware``, so a crash is seen as the 500 the client gets, and works even
after the app has started (the stack is rebuilt on the next request).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from instrumentation.frameworks.asgi import NarrowsASGIMiddleware
from instrumentation.server import ServerTelemetry

__all__ = ["instrument_starlette", "patch_starlette_class"]

_MARK = "_narrows_instrumented"


def instrument_starlette(app: Any, server: ServerTelemetry) -> None:
    """Wrap one app instance (idempotent)."""
    if getattr(app, _MARK, False):
        return
    build = app.build_middleware_stack

    def build_middleware_stack() -> Any:
        return NarrowsASGIMiddleware(build(), server)

    app.build_middleware_stack = build_middleware_stack
    app.middleware_stack = None
    setattr(app, _MARK, True)


def patch_starlette_class(server: Callable[[], ServerTelemetry | None]) -> None:
    """Zero-code: every Starlette/FastAPI app built from now on gets the middleware."""
    from starlette.applications import Starlette

    if getattr(Starlette, _MARK, False):
        return
    original = Starlette.build_middleware_stack

    def build_middleware_stack(self: Any) -> Any:
        return NarrowsASGIMiddleware(original(self), server)

    Starlette.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
    setattr(Starlette, _MARK, True)
