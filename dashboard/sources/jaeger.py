"""Jaeger query API v3 client: the trace half of both sources (Narrows speaks the same API)."""

from __future__ import annotations

import json
from typing import Any

from dashboard.sources.base import SourceError
from dashboard.sources.http import JsonClient
from dashboard.sources.model import Operation, Trace, TraceSummary, parse_otlp_traces
from dashboard.sources.query import TRACE_ID, TraceQuery, go_duration, rfc3339

__all__ = ["JaegerV3Client", "summarize"]


def _find_params(query: TraceQuery) -> dict[str, str]:
    params = {
        "query.startTimeMin": rfc3339(query.window.start),
        "query.startTimeMax": rfc3339(query.window.end),
        "query.searchDepth": str(query.limit),
    }
    if query.service:
        params["query.serviceName"] = query.service
    if query.operation:
        params["query.operationName"] = query.operation
    if query.duration_min_ms is not None:
        params["query.durationMin"] = go_duration(query.duration_min_ms)
    if query.duration_max_ms is not None:
        params["query.durationMax"] = go_duration(query.duration_max_ms)
    if query.attributes:
        params["query.attributes"] = json.dumps(dict(query.attributes))
    return params


def summarize(trace: Trace) -> TraceSummary:
    """A summary computed from a whole trace (for a Jaeger without trace-summaries)."""
    ids = {s.span_id for s in trace.spans}
    roots = [s for s in trace.spans if s.parent_span_id not in ids] or trace.spans
    root = min(roots, key=lambda s: (s.start_ns, -s.end_ns))
    return TraceSummary(
        trace_id=trace.trace_id,
        root_service=root.service,
        root_operation=root.name,
        start_ns=trace.start_ns,
        end_ns=max(s.end_ns for s in trace.spans),
        span_count=len(trace.spans),
        error_count=sum(1 for s in trace.spans if s.status_code == 2),
    )


class JaegerV3Client:
    """GETs on ``/api/v3``; parameters are passed as URL parameters, never interpolated."""

    def __init__(self, http: JsonClient) -> None:
        self.http = http
        self._has_summaries = True

    @property
    def base_url(self) -> str:
        return self.http.base_url

    def services(self) -> list[str]:
        body = self.http.get_json("/api/v3/services") or {}
        return sorted(str(s) for s in body.get("services") or [])

    def operations(self, service: str, kind: str | None = None) -> list[Operation]:
        params = {"service": service}
        if kind:
            params["spanKind"] = kind
        body = self.http.get_json("/api/v3/operations", params) or {}
        return [
            Operation(str(o.get("name", "")), str(o.get("spanKind", "")))
            for o in body.get("operations") or []
        ]

    def summaries(self, query: TraceQuery) -> list[TraceSummary]:
        if self._has_summaries:
            body = self.http.get_json(
                "/api/v3/trace-summaries", _find_params(query), allow_404=True
            )
            if body is not None:
                return [_summary(s) for s in body.get("summaries") or []]
            # A Jaeger without the summaries route: summarise whole traces instead.
            self._has_summaries = False
        return sorted(
            (summarize(t) for t in self.traces(query)), key=lambda s: s.start_ns, reverse=True
        )

    def traces(self, query: TraceQuery) -> list[Trace]:
        body = self.http.get_json("/api/v3/traces", _find_params(query), allow_404=True)
        if body is None:
            return []
        return parse_otlp_traces(body.get("result") or {})

    def trace(self, trace_id: str) -> Trace | None:
        if not TRACE_ID.match(trace_id):
            raise ValueError("trace id must be 32 lowercase hexadecimal characters")
        body = self.http.get_json(f"/api/v3/traces/{trace_id}", allow_404=True)
        if body is None:
            return None
        traces = parse_otlp_traces(body.get("result") or {})
        return traces[0] if traces else None


def _summary(s: dict[str, Any]) -> TraceSummary:
    try:
        return TraceSummary(
            trace_id=str(s["traceId"]),
            root_service=str(s.get("rootServiceName", "")),
            root_operation=str(s.get("rootOperationName", "")),
            start_ns=int(s["minStartTimeUnixNano"]),
            end_ns=int(s["maxEndTimeUnixNano"]),
            span_count=int(s.get("spanCount", 0)),
            error_count=int(s.get("errorSpanCount", 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceError("/api/v3/trace-summaries", f"malformed summary ({exc})") from None
