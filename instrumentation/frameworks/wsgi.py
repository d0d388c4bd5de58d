"""A lean WSGI server middleware: one span, the RED metrics and the context per request.

Frameworks put the route template into ``environ["narrows.route"]`` and a handled
exception into ``environ["narrows.exception"]``; the span ends when the server closes
the response iterable (so streaming bodies are inside it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from instrumentation.server import ActiveRequest, ServerTelemetry

__all__ = ["EXCEPTION_KEY", "ROUTE_KEY", "NarrowsWSGIMiddleware", "wsgi_headers"]

ROUTE_KEY = "narrows.route"
EXCEPTION_KEY = "narrows.exception"
_MARK = "narrows.request"
_HEADER_KEYS = {
    "HTTP_HOST": "host",
    "HTTP_USER_AGENT": "user-agent",
    "HTTP_TRACEPARENT": "traceparent",
    "HTTP_TRACESTATE": "tracestate",
    "HTTP_BAGGAGE": "baggage",
    "HTTP_B3": "b3",
    "HTTP_X_B3_TRACEID": "x-b3-traceid",
    "HTTP_X_B3_SPANID": "x-b3-spanid",
    "HTTP_X_B3_SAMPLED": "x-b3-sampled",
}
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def wsgi_headers(environ: dict[str, Any]) -> dict[str, str]:
    """The request headers Narrows reads, from a WSGI environ (or Django's ``META``)."""
    return {name: environ[key] for key, name in _HEADER_KEYS.items() if key in environ}


def protocol_version(environ: dict[str, Any]) -> str | None:
    proto = environ.get("SERVER_PROTOCOL", "")
    return proto[5:] if proto.startswith("HTTP/") else None


class _Finishing:
    """The app's response iterable: the request's telemetry ends when the body has been
    sent in full or the server closes the iterable, whichever comes first (once)."""

    def __init__(self, inner: Iterable[bytes], finish: Callable[[], None]) -> None:
        self._inner, self._finish = inner, finish

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner
        self._done()

    def _done(self) -> None:
        finish, self._finish = self._finish, _noop
        finish()

    def close(self) -> None:
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            self._done()


def _noop() -> None:
    return None


class NarrowsWSGIMiddleware:
    """Wrap any WSGI app: ``app.wsgi_app = NarrowsWSGIMiddleware(app.wsgi_app, server)``."""

    def __init__(
        self, app: WSGIApp, server: ServerTelemetry | Callable[[], ServerTelemetry | None]
    ) -> None:
        self.app = app
        self._server = server

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        server = self._server if isinstance(self._server, ServerTelemetry) else self._server()
        if server is None or _MARK in environ:
            return self.app(environ, start_response)
        path = environ.get("PATH_INFO") or "/"
        if path == server.metrics_path:
            return _serve_metrics(server, environ, start_response)
        if server.is_excluded(path):
            return self.app(environ, start_response)
        request = server.start(
            environ.get("REQUEST_METHOD", "GET"),
            environ.get("wsgi.url_scheme", "http"),
            path,
            wsgi_headers(environ),
            environ.get("REMOTE_ADDR"),
            protocol_version(environ),
        )
        environ[_MARK] = request
        status = [500]

        def start(status_line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            code = status_line[:3]
            status[0] = int(code) if code.isdigit() else 500
            return start_response(status_line, headers, exc_info)

        try:
            body = self.app(environ, start)
        except BaseException as exc:
            server.finish(request, status[0], environ.get(ROUTE_KEY), exc)
            raise
        return _Finishing(body, lambda: _finish(server, request, status[0], environ))


def _finish(
    server: ServerTelemetry, request: ActiveRequest, status: int, environ: dict[str, Any]
) -> None:
    server.finish(request, status, environ.get(ROUTE_KEY), environ.get(EXCEPTION_KEY))


def _serve_metrics(
    server: ServerTelemetry, environ: dict[str, Any], start_response: StartResponse
) -> Iterable[bytes]:
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        start_response("405 Method Not Allowed", [("Content-Type", "application/json")])
        return [b'{"error": "use GET"}']
    body, ctype = server.exposition(environ.get("HTTP_ACCEPT", ""))
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [body]
