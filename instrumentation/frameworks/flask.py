"""Flask: the Narrows WSGI middleware around ``app.wsgi_app``, plus two small hooks.

A ``before_request`` function records ``request.url_rule.rule`` (the route template),
and a ``got_request_exception`` receiver records an exception Flask turned into a 500,
so the span carries it although it never escapes ``wsgi_app``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from instrumentation.frameworks.wsgi import EXCEPTION_KEY, ROUTE_KEY, NarrowsWSGIMiddleware
from instrumentation.server import ServerTelemetry

__all__ = ["instrument_flask", "patch_flask_class"]

_MARK = "narrows"


def _record_route() -> None:
    from flask import request

    rule = request.url_rule
    if rule is not None:
        request.environ[ROUTE_KEY] = rule.rule


def _record_exception(sender: Any, exception: BaseException, **_: Any) -> None:
    from flask import request

    request.environ[EXCEPTION_KEY] = exception


def instrument_flask(
    app: Any, server: ServerTelemetry | Callable[[], ServerTelemetry | None]
) -> None:
    """Instrument one Flask app (idempotent)."""
    from flask import got_request_exception

    if app.extensions.get(_MARK):
        return
    app.extensions[_MARK] = True
    app.wsgi_app = NarrowsWSGIMiddleware(app.wsgi_app, server)
    # before_request_funcs directly: the decorator refuses once the app has served.
    app.before_request_funcs.setdefault(None, []).insert(0, _record_route)
    got_request_exception.connect(_record_exception, app, weak=False)


def patch_flask_class(Flask: Any, server: Callable[[], ServerTelemetry | None]) -> None:
    """Zero-code: every Flask app created from now on is instrumented.

    Takes the class from the hook's module: when ``flask.app`` has just been imported
    the ``flask`` package itself is still initialising.
    """
    if getattr(Flask, "_narrows_instrumented", False):
        return
    original = Flask.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        instrument_flask(self, server)

    Flask.__init__ = __init__
    Flask._narrows_instrumented = True
