"""Optional bearer-token check (``NARROWS_TOKEN``) in front of every port but ``/healthz``."""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["BearerAuth"]


class BearerAuth:
    """401 with a JSON body unless ``Authorization: Bearer <token>`` matches."""

    def __init__(self, app: ASGIApp, token: str | None, otlp: bool = False) -> None:
        self._app = app
        self._expected = f"Bearer {token}".encode() if token else None
        self._otlp = otlp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._expected is None or scope["type"] != "http" or scope["path"] == "/healthz":
            await self._app(scope, receive, send)
            return
        given = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                given = value
                break
        # The scheme is case-insensitive (RFC 7235 §2.1: "bearer", "BEARER" are Bearer).
        scheme, _, credentials = given.partition(b" ")
        if scheme.lower() == b"bearer":
            given = b"Bearer " + credentials
        if hmac.compare_digest(given, self._expected):
            await self._app(scope, receive, send)
            return
        message = "missing or wrong bearer token"
        body = (
            {"code": 16, "message": message}
            if self._otlp
            else {"error": {"httpCode": 401, "message": message}}
        )
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"www-authenticate", b'Bearer realm="narrows"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
