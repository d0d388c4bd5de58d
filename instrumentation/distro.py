"""Zero-code: the OpenTelemetry distro and configurator entry points for Narrows.

``opentelemetry-instrument uvicorn app:app`` (or ``flask run``, ``python manage.py
runserver --noreload``) loads these through ``sitecustomize`` before the app is
imported: the configurator calls ``configure()`` and arranges for every FastAPI/Starlette,
Flask and Django app created afterwards to get the same Narrows server middleware that
``instrument(app)`` adds, so both paths produce the same spans. The distro keeps the
contrib server instrumentors (fastapi, starlette, flask, django, asgi, wsgi) from adding
a second SERVER span, and isolates every other contrib instrumentor: one that fails is
logged and skipped.
"""

from __future__ import annotations

import logging
import os
from typing import Any

# The upstream module is marked ``# type: ignore`` as a whole, so mypy sees no BaseDistro.
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]

from instrumentation.libraries import LIBRARIES
from instrumentation.server import ServerTelemetry

__all__ = ["NarrowsConfigurator", "NarrowsDistro", "install_framework_hooks"]

_log = logging.getLogger("instrumentation.distro")

#: Contrib server instrumentors replaced by the Narrows middleware.
SERVER_INSTRUMENTORS = frozenset(("fastapi", "starlette", "flask", "django", "asgi", "wsgi"))
_OURS = frozenset(lib.name for lib in LIBRARIES)


class NarrowsDistro(BaseDistro):  # type: ignore[misc]
    """Picked by ``opentelemetry-instrument`` (``OTEL_PYTHON_DISTRO=narrows`` to be explicit)."""

    def _configure(self, **kwargs: Any) -> None:
        # Python's own exporter default is gRPC; Narrows speaks http/protobuf (the spec default).
        os.environ.setdefault("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        if entry_point.name in SERVER_INSTRUMENTORS or entry_point.name in _OURS:
            return  # the middleware / configure() already covers these
        try:
            entry_point.load()().instrument(**kwargs)
        except ModuleNotFoundError as exc:
            _log.debug("skipping the %s instrumentation: %s", entry_point.name, exc)
        except Exception as exc:
            _log.warning(
                "skipping the %s instrumentation: %s: %s", entry_point.name, type(exc).__name__, exc
            )


def _server() -> ServerTelemetry | None:
    from instrumentation.setup import current

    telemetry = current()
    return telemetry.server if telemetry is not None else None


def install_framework_hooks() -> None:
    """Patch each framework when (and only if) the app imports it."""
    import wrapt

    def starlette(module: Any) -> None:
        from instrumentation.frameworks.starlette import patch_app_class

        patch_app_class(module.Starlette, _server)

    def fastapi(module: Any) -> None:  # FastAPI's __init__ does not call Starlette's
        from instrumentation.frameworks.starlette import patch_app_class

        patch_app_class(module.FastAPI, _server)

    def flask(module: Any) -> None:
        from instrumentation.frameworks.flask import patch_flask_class

        patch_flask_class(module.Flask, _server)

    def django_wsgi(module: Any) -> None:
        from instrumentation.frameworks.django import patch_django_handler

        patch_django_handler(module.WSGIHandler, _server)

    def django_asgi(module: Any) -> None:
        from instrumentation.frameworks.django import patch_django_handler

        patch_django_handler(module.ASGIHandler, _server)

    hooks = (
        (starlette, "starlette.applications"),
        (fastapi, "fastapi.applications"),
        (flask, "flask.app"),
        (django_wsgi, "django.core.handlers.wsgi"),
        (django_asgi, "django.core.handlers.asgi"),
    )
    for hook, module in hooks:
        wrapt.register_post_import_hook(_isolated(hook, module), module)


def _isolated(hook: Any, module: str) -> Any:
    def run(mod: Any) -> None:
        try:
            hook(mod)
        except Exception as exc:  # a failed patch leaves the app uninstrumented, not broken
            _log.warning("could not instrument %s: %s: %s", module, type(exc).__name__, exc)

    return run


class NarrowsConfigurator:
    """The ``opentelemetry_configurator`` entry point: Narrows defaults for every signal."""

    def configure(self, **kwargs: Any) -> None:
        from instrumentation.setup import configure

        configure()
        install_framework_hooks()
