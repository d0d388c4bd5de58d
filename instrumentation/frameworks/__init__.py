"""Framework detection: which adapter instruments a given app object.

Detection looks at the app's class hierarchy by module and name, so no framework is
imported that the app does not already use.
"""

from __future__ import annotations

from typing import Any

from instrumentation.server import ServerTelemetry

__all__ = ["SUPPORTED", "detect", "instrument_app"]

_CLASSES = {
    "starlette.applications.Starlette": "starlette",
    "flask.app.Flask": "flask",
    "django.core.handlers.wsgi.WSGIHandler": "django",
    "django.core.handlers.asgi.ASGIHandler": "django",
}
SUPPORTED = (
    "FastAPI/Starlette apps, Flask apps, Django get_wsgi_application()/get_asgi_application()"
)


def detect(app: Any) -> str | None:
    """``"starlette"``, ``"flask"``, ``"django"`` or ``None``."""
    for cls in type(app).__mro__:
        found = _CLASSES.get(f"{cls.__module__}.{cls.__qualname__}")
        if found:
            return found
    return None


def instrument_app(app: Any, server: ServerTelemetry) -> str:
    """Wire the server middleware for ``app``; returns the framework's name."""
    framework = detect(app)
    if framework == "starlette":
        from instrumentation.frameworks.starlette import instrument_starlette

        instrument_starlette(app, server)
    elif framework == "flask":
        from instrumentation.frameworks.flask import instrument_flask

        instrument_flask(app, server)
    elif framework == "django":
        from instrumentation.frameworks.django import instrument_django

        instrument_django(app, server)
    else:
        raise TypeError(
            f"instrument() does not know {type(app).__module__}.{type(app).__qualname__}; "
            f"supported: {SUPPORTED}. For any other ASGI/WSGI app call configure() and wrap it "
            "in instrumentation.NarrowsASGIMiddleware / NarrowsWSGIMiddleware."
        )
    return framework
