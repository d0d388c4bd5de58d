"""Backend-neutral trace objects the pages and the analysis work on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = [
    "CACHE_FRAME",
    "RED_FRAME",
    "SHARD_FRAME",
    "Exemplar",
    "Frame",
    "Freshness",
    "Histogram",
    "LogRecord",
    "Operation",
    "Span",
    "Trace",
    "TraceSummary",
    "parse_otlp_traces",
]

#: Columns of ``TelemetrySource.red`` (``ts`` is the bucket start, UTC; rates per second).
RED_FRAME = (
    "group", "ts", "count", "rate", "errors", "error_rate", "mean_ms", "p50_ms", "p95_ms",
    "p99_ms",
)  # fmt: skip
#: Columns of ``TelemetrySource.shard_stats`` (the analysis' SHARD_COLUMNS).
SHARD_FRAME = (
    "ts", "shard_id", "queries", "errors", "mean_ms", "p95_ms", "pool_wait_mean_ms",
)  # fmt: skip
#: Columns of ``TelemetrySource.cache_stats`` (the analysis' CACHE_COLUMNS).
CACHE_FRAME = ("ts", "cache", "hits", "misses", "errors")


@dataclass(frozen=True)
class Span:
    """One span, with its process's resource attributes (``service.instance.id`` tells
    replicas of one service apart; ``service.name`` is also in ``service``)."""

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
    resource: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def instance(self) -> str:
        """The emitting process's ``service.instance.id`` ('' when it has none)."""
        value = self.resource.get("service.instance.id")
        return "" if value is None else str(value)


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


@dataclass(frozen=True)
class Operation:
    name: str
    span_kind: str = ""


@dataclass(frozen=True)
class LogRecord:
    time_ns: int
    service: str
    severity: str
    body: str
    trace_id: str = ""
    span_id: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Exemplar:
    """A metric sample that points at the trace that produced it."""

    trace_id: str
    span_id: str
    time_ns: int
    value: float
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Frame:
    """A table answer; ``note`` says how it was obtained when the backend could not answer
    natively (e.g. "estimated from 120 sampled traces")."""

    data: pd.DataFrame
    note: str | None = None


@dataclass(frozen=True)
class Histogram:
    """Span-duration counts: one row per (time step, bucket) with ``ts``, ``bucket``,
    ``low_ms``, ``high_ms``, ``count``; bucket *i* holds ``bounds_ms[i-1] < d ≤ bounds_ms[i]``
    and the last one ``d > bounds_ms[-1]`` (``high_ms`` = inf)."""

    bounds_ms: tuple[float, ...]
    data: pd.DataFrame
    note: str | None = None

    def totals(self) -> pd.Series:
        """Count per bucket index over the whole window."""
        if self.data.empty:
            return pd.Series(0, index=range(len(self.bounds_ms) + 1), dtype="int64")
        return (
            self.data.groupby("bucket")["count"]
            .sum()
            .reindex(range(len(self.bounds_ms) + 1), fill_value=0)
        )


@dataclass(frozen=True)
class Freshness:
    """How current the data is, per signal: newest timestamp (unix ns) or None."""

    newest_ns: dict[str, int | None]
    detail: dict[str, Any] = field(default_factory=dict)


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


def _event(e: dict[str, Any]) -> dict[str, Any]:
    """An OTLP/JSON span event as ``{"name", "time_ns", "attributes": {…}}``."""
    return {
        "name": e.get("name", ""),
        "time_ns": int(e.get("timeUnixNano", 0) or 0),
        "attributes": _attrs(e.get("attributes")),
    }


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
                    events=[_event(e) for e in sp.get("events", [])],
                    resource=resource,
                )
                by_trace.setdefault(span.trace_id, []).append(span)
    return [Trace(tid, sorted(spans, key=lambda s: s.start_ns)) for tid, spans in by_trace.items()]
