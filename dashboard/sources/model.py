"""Backend-neutral trace objects the pages and the analysis work on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Span", "Trace", "TraceSummary", "parse_otlp_traces"]


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str
    service: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


@dataclass(frozen=True)
class Trace:
    trace_id: str
    spans: list[Span]

    @property
    def start_ns(self) -> int:
        return min(s.start_ns for s in self.spans)

    @property
    def duration_ms(self) -> float:
        return (max(s.end_ns for s in self.spans) - self.start_ns) / 1e6


@dataclass(frozen=True)
class TraceSummary:
    trace_id: str
    root_service: str
    root_operation: str
    start_ns: int
    end_ns: int
    span_count: int
    error_count: int

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def _any_value(v: dict[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue", "bytesValue"):
        if key in v:
            return v[key]
    if "intValue" in v:
        return int(v["intValue"])
    if "arrayValue" in v:
        return [_any_value(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return {
            kv["key"]: _any_value(kv.get("value", {})) for kv in v["kvlistValue"].get("values", [])
        }
    return None


def _attrs(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {kv["key"]: _any_value(kv.get("value", {})) for kv in items or []}


def parse_otlp_traces(result: dict[str, Any]) -> list[Trace]:
    """OTLP/JSON ``resourceSpans`` (as the Jaeger API v3 returns them) → traces by id."""
    by_trace: dict[str, list[Span]] = {}
    for rs in result.get("resourceSpans", []):
        resource = _attrs(rs.get("resource", {}).get("attributes"))
        service = str(resource.get("service.name", "unknown_service"))
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                span = Span(
                    trace_id=sp["traceId"],
                    span_id=sp["spanId"],
                    parent_span_id=sp.get("parentSpanId", ""),
                    service=service,
                    name=sp.get("name", ""),
                    kind=int(sp.get("kind", 0)),
                    start_ns=int(sp.get("startTimeUnixNano", 0)),
                    end_ns=int(sp.get("endTimeUnixNano", 0)),
                    status_code=int(sp.get("status", {}).get("code", 0)),
                    attributes=_attrs(sp.get("attributes")),
                    events=sp.get("events", []),
                )
                by_trace.setdefault(span.trace_id, []).append(span)
    return [Trace(tid, sorted(spans, key=lambda s: s.start_ns)) for tid, spans in by_trace.items()]
