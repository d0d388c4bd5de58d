"""NarrowsSource: the Narrows collector's query API (Jaeger API v3 + Narrows aggregates)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from dashboard.sources.base import SourceError
from dashboard.sources.model import Trace, TraceSummary, parse_otlp_traces

__all__ = ["NarrowsSource", "rfc3339"]


def rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NarrowsSource:
    """Talks HTTP only; every failure becomes a SourceError naming the URL."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(
            base_url=self.base_url, timeout=timeout_s, headers=headers, transport=transport
        )

    def _get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        url = self.base_url + path
        try:
            resp = self._client.get(path, params=params)
        except httpx.TimeoutException:
            raise SourceError(url, "timed out") from None
        except httpx.HTTPError as exc:
            raise SourceError(url, f"unreachable ({exc.__class__.__name__}: {exc})") from None
        if resp.status_code >= 500:
            raise SourceError(url, f"answered {resp.status_code}")
        return resp

    def services(self) -> list[str]:
        return list(self._get("/api/v3/services").json().get("services", []))

    def trace_summaries(
        self, service: str | None, start: datetime, end: datetime, limit: int = 20
    ) -> list[TraceSummary]:
        params = {
            "query.startTimeMin": rfc3339(start),
            "query.startTimeMax": rfc3339(end),
            "query.searchDepth": str(limit),
        }
        if service:
            params["query.serviceName"] = service
        resp = self._get("/api/v3/trace-summaries", params)
        if resp.status_code != 200:
            raise SourceError(self.base_url, f"answered {resp.status_code}: {resp.text[:200]}")
        return [
            TraceSummary(
                trace_id=s["traceId"],
                root_service=s.get("rootServiceName", ""),
                root_operation=s.get("rootOperationName", ""),
                start_ns=int(s["minStartTimeUnixNano"]),
                end_ns=int(s["maxEndTimeUnixNano"]),
                span_count=int(s.get("spanCount", 0)),
                error_count=int(s.get("errorSpanCount", 0)),
            )
            for s in resp.json().get("summaries", [])
        ]

    def get_trace(self, trace_id: str) -> Trace | None:
        resp = self._get(f"/api/v3/traces/{trace_id}")
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise SourceError(self.base_url, f"answered {resp.status_code}: {resp.text[:200]}")
        traces = parse_otlp_traces(resp.json().get("result", {}))
        return traces[0] if traces else None
