"""One httpx client per backend, with timeouts, and every failure turned into SourceError."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from dashboard.sources.base import SourceError

__all__ = ["JsonClient"]


class JsonClient:
    """GETs JSON from one base URL; 404 is returned to the caller, other errors raise."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 5.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 2.0)),
            headers=dict(headers or {}),
            transport=transport,
        )

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> httpx.Response:
        url = self.base_url + path
        try:
            resp = self._client.get(path, params=dict(params or {}))
        except httpx.TimeoutException:
            raise SourceError(url, "timed out (slow or overloaded)") from None
        except httpx.HTTPError as exc:
            raise SourceError(url, f"unreachable ({exc.__class__.__name__}: {exc})") from None
        if resp.status_code in (401, 403):
            raise SourceError(url, f"refused the credentials ({resp.status_code}); check the token")
        if resp.status_code >= 500:
            raise SourceError(url, f"answered {resp.status_code}: {_message(resp)}")
        return resp

    def get_json(
        self, path: str, params: Mapping[str, Any] | None = None, *, allow_404: bool = False
    ) -> dict[str, Any] | None:
        """The decoded body; None for a 404 when ``allow_404``; SourceError otherwise."""
        resp = self.get(path, params)
        if resp.status_code == 404 and allow_404:
            return None
        if resp.status_code != 200:
            raise SourceError(
                self.base_url + path, f"answered {resp.status_code}: {_message(resp)}"
            )
        try:
            body = resp.json()
        except ValueError:
            raise SourceError(self.base_url + path, "answered something that is not JSON") from None
        if not isinstance(body, dict):
            raise SourceError(self.base_url + path, "answered an unexpected JSON shape")
        return body

    def close(self) -> None:
        self._client.close()


def _message(resp: httpx.Response) -> str:
    """The error message from a Jaeger/Narrows/Prometheus/Loki error body, or its text."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200]
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and "message" in err:
            return str(err["message"])[:200]
        if isinstance(err, str):
            return err[:200]
    return resp.text[:200]
