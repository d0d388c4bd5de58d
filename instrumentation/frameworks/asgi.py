"""A lean pure-ASGI server middleware: one span, the RED metrics and the context in one pass.

It also answers ``GET /metrics`` itself (no routing, no ``/metrics/`` redirect), and
passes websocket traffic through untouched. When the app's lifespan ends it flushes the
queued spans and logs (bounded by ``NARROWS_SHUTDOWN_TIMEOUT``) before passing the
"shutdown complete" on: uvicorn re-raises SIGTERM after its graceful shutdown, so the
process dies by the signal and no atexit hook runs. A request already seen by an outer
Narrows middleware (a mounted sub-app, or ``instrument`` after zero-code) is not
recorded twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from instrumentation.server import CLIENT_WAIT_MIN_NS, PROPAGATION_HEADERS, ServerTelemetry

__all__ = ["NarrowsASGIMiddleware", "route_template"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_MARK = "narrows.request"
_WANTED = frozenset(n.encode() for n in (*PROPAGATION_HEADERS, "host", "user-agent", "accept"))


def route_template(scope: Scope) -> str | None:
    """The matched route's template from the scope Starlette's router filled in.

    Inside a ``Mount`` the prefix is ``root_path`` minus the top-level root path; a
    ``Mount`` that is itself the last match (a static or foreign ASGI app) becomes
    ``/prefix/{path:path}``. ``None`` when nothing matched (a 404 or redirect).
    """
    route = scope.get("route")
    if route is None:
        return None
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return None
    if type(route).__name__ == "Mount":
        path = path.rstrip("/") + "/{path:path}"
    app_root = scope.get("app_root_path")
    if app_root is not None:
        root = scope.get("root_path", "")
        if root.startswith(app_root) and len(root) > len(app_root):
            prefix = root[len(app_root) :]
            if not path.startswith(prefix + "/") and path != prefix:
                path = prefix + path
    return path or "/"


class NarrowsASGIMiddleware:
    """Wrap any ASGI app: ``app = NarrowsASGIMiddleware(app, telemetry.server)``.

    ``server`` may be a callable returning the ``ServerTelemetry``, so the zero-code
    path can wrap apps before ``configure`` has run.
    """

    def __init__(
        self, app: ASGIApp, server: ServerTelemetry | Callable[[], ServerTelemetry | None]
    ) -> None:
        self.app = app
        self._server = server

    def _resolve(self) -> ServerTelemetry | None:
        server = self._server
        return server if isinstance(server, ServerTelemetry) else server()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._flush_at_shutdown(send))
            return
        if scope["type"] != "http" or _MARK in scope:
            await self.app(scope, receive, send)
            return
        server = self._resolve()
        if server is None:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name in _WANTED:
                key = name.decode("latin-1")
                text = value.decode("latin-1")
                headers[key] = headers[key] + "," + text if key in headers else text
        if path == server.metrics_path:
            await _serve_metrics(server, scope, send, headers.get("accept", ""))
            return
        if server.is_excluded(path):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        request = server.start(
            scope["method"],
            scope.get("scheme", "http"),
            path,
            headers,
            client[0] if client else None,
            scope.get("http_version"),
        )
        scope[_MARK] = request
        status = 500  # what the client sees if the app dies before answering
        done = False

        async def receive_timed() -> Message:
            # The body may come after the headers (a slow or busy client): a wait for it is
            # the client's time, recorded as a child span, not the handler's own time.
            started = time.time_ns()
            message = await receive()
            if message.get("type") == "http.request":
                ended = time.time_ns()
                if ended - started >= CLIENT_WAIT_MIN_NS:
                    server.client_wait(request, started, ended)
            return message

        async def send_status(message: Message) -> None:
            nonlocal status, done
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
            elif kind == "http.response.body" and not message.get("more_body") and status < 500:
                # The response is complete: end the span before the last bytes leave, so
                # its duration excludes background tasks and a client that has the answer
                # can already find the span. A 5xx waits for the app to return, since the
                # exception that caused it only arrives then.
                done = True
                server.finish(request, status, route_template(scope), detach=False)
            await send(message)

        try:
            await self.app(scope, receive_timed, send_status)
        except BaseException as exc:
            if done:
                server.late_exception(request, route_template(scope), exc)
            else:
                server.finish(request, status, route_template(scope), exc, detach=False)
            raise
        else:
            if not done:
                server.finish(request, status, route_template(scope), detach=False)
        finally:
            server.detach(request)

    def _flush_at_shutdown(self, send: Send) -> Send:
        async def send_after_flush(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                server = self._resolve()
                if server is not None and server.flush is not None:
                    await asyncio.to_thread(server.flush)  # bounded; never raises
            await send(message)

        return send_after_flush


async def _serve_metrics(server: ServerTelemetry, scope: Scope, send: Send, accept: str) -> None:
    if scope["method"] not in ("GET", "HEAD"):
        status, body, ctype = 405, b'{"error": "use GET"}', "application/json"
    else:
        body, ctype = server.exposition(accept)
        status = 200
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", ctype.encode("latin-1")),
                (b"content-length", str(len(body)).encode("latin-1")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
