"""Trace objects (e.g. synthetic ones) as OTLP/JSON export requests, to send them through a
real collector's ``/v1/traces`` as an instrumented process would."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from dashboard.sources.model import Trace

__all__ = ["export_requests"]


def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": str(v)}


def _attrs(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in d.items()]


def export_requests(
    traces: Sequence[Trace], *, shift_ns: int = 0, batch: int = 2000
) -> Iterator[dict[str, Any]]:
    """OTLP/JSON bodies of at most ``batch`` spans, grouped by resource, times shifted."""
    spans = [s for t in traces for s in t.spans]
    for i in range(0, len(spans), batch):
        by_resource: dict[tuple[tuple[str, str], ...], list[dict[str, Any]]] = {}
        resources: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        for s in spans[i : i + batch]:
            resource = s.resource or {"service.name": s.service}
            key = tuple(sorted((k, str(v)) for k, v in resource.items()))
            resources[key] = resource
            body: dict[str, Any] = {
                "traceId": s.trace_id,
                "spanId": s.span_id,
                "name": s.name,
                "kind": s.kind,
                "startTimeUnixNano": str(s.start_ns + shift_ns),
                "endTimeUnixNano": str(s.end_ns + shift_ns),
                "attributes": _attrs(s.attributes),
                "status": {"code": s.status_code},
            }
            if s.parent_span_id:
                body["parentSpanId"] = s.parent_span_id
            by_resource.setdefault(key, []).append(body)
        yield {
            "resourceSpans": [
                {
                    "resource": {"attributes": _attrs(resources[key])},
                    "scopeSpans": [{"scope": {"name": "synthetic"}, "spans": group}],
                }
                for key, group in by_resource.items()
            ]
        }
