"""Django: the handler's ``get_response`` (WSGI) or ``get_response_async`` (ASGI) is wrapped.

``instrument(application)`` takes what ``get_wsgi_application()`` or
``get_asgi_application()`` returned. After the view ran, ``request.resolver_match.route``
is the route template (Narrows prefixes ``/``), and a ``got_request_exception`` receiver
keeps an exception Django turned into a 500 so the span records it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from instrumentation.frameworks.wsgi import EXCEPTION_KEY, protocol_version, wsgi_headers
from instrumentation.server import ServerTelemetry

__all__ = ["instrument_django", "patch_django_handler"]

_MARK = "_narrows_instrumented"


def _route(request: Any) -> str | None:
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    if not route:
        return None
    text = str(route)
    return text if text.startswith("/") else "/" + text


def _record_exception(sender: Any, request: Any = None, **_: Any) -> None:
    if request is not None:
        request.META[EXCEPTION_KEY] = sys.exc_info()[1]


def _metrics_response(server: ServerTelemetry, request: Any) -> Any:
    from django.http import HttpResponse

    if request.method not in ("GET", "HEAD"):
        return HttpResponse(b'{"error": "use GET"}', status=405, content_type="application/json")
    body, ctype = server.exposition(request.META.get("HTTP_ACCEPT", ""))
    return HttpResponse(body, content_type=ctype)


def _start(server: ServerTelemetry, request: Any) -> Any:
    meta = request.META
    return server.start(
        request.method or "GET",
        request.scheme or "http",
        request.path_info,
        wsgi_headers(meta),
        meta.get("REMOTE_ADDR"),
        protocol_version(meta),
    )


def instrument_django(
    handler: Any, server: ServerTelemetry | Callable[[], ServerTelemetry | None]
) -> None:
    """Instrument one Django WSGI or ASGI handler (idempotent)."""
    from django.core.handlers.asgi import ASGIHandler
    from django.core.signals import got_request_exception

    if getattr(handler, _MARK, False):
        return
    setattr(handler, _MARK, True)
    got_request_exception.connect(_record_exception, dispatch_uid="narrows", weak=False)

    def resolve() -> ServerTelemetry | None:
        return server if isinstance(server, ServerTelemetry) else server()

    if isinstance(handler, ASGIHandler):
        original_async = handler.get_response_async

        async def get_response_async(request: Any) -> Any:
            srv = resolve()
            if srv is None or srv.is_excluded(request.path_info):
                return await original_async(request)
            if request.path_info == srv.metrics_path:
                return _metrics_response(srv, request)
            active = _start(srv, request)
            try:
                response = await original_async(request)
            except BaseException as exc:
                srv.finish(active, 500, _route(request), exc)
                raise
            exc_kept = request.META.get(EXCEPTION_KEY)
            srv.finish(active, response.status_code, _route(request), exc_kept)
            return response

        handler.get_response_async = get_response_async
        return

    original = handler.get_response

    def get_response(request: Any) -> Any:
        srv = resolve()
        if srv is None or srv.is_excluded(request.path_info):
            return original(request)
        if request.path_info == srv.metrics_path:
            return _metrics_response(srv, request)
        active = _start(srv, request)
        try:
            response = original(request)
        except BaseException as exc:
            srv.finish(active, 500, _route(request), exc)
            raise
        exc_kept = request.META.get(EXCEPTION_KEY)
        srv.finish(active, response.status_code, _route(request), exc_kept)
        return response

    handler.get_response = get_response


def patch_django_handler(cls: Any, server: Callable[[], ServerTelemetry | None]) -> None:
    """Zero-code: every handler of ``cls`` (WSGIHandler or ASGIHandler) created from now on
    is instrumented."""
    if cls.__dict__.get("_narrows_patched", False):
        return
    original = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        instrument_django(self, server)

    cls.__init__ = __init__
    cls._narrows_patched = True
