"""What the analysis reads: trace samples and aggregate frames, with their exact schemas.

The source layer fills ``AnalysisInputs`` from either backend (the Narrows collector, or
Prometheus + Jaeger); the detectors read nothing else. Frames are pandas DataFrames with
the columns below (extra columns are ignored). ``ts`` is the bucket start,
``datetime64[ns, UTC]``. A route is ``"{method} {http.route}"``, e.g. ``"GET /items/{id}"``
(the server span's name). When a backend cannot provide a frame, leave it ``None`` and name
it in ``missing``: the detectors that need it are skipped and say so.

``inputs_from_traces`` builds everything from a complete set of traces (tests, small
windows, a trace-only backend).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from dashboard.sources.model import Span, Trace

__all__ = [
    "CACHE_COLUMNS",
    "EJECTION_COLUMNS",
    "RED_COLUMNS",
    "SHARD_COLUMNS",
    "SPAN_COLUMNS",
    "SWEEP_COLUMNS",
    "AnalysisInputs",
    "SloObjective",
    "entry_span",
    "inputs_from_traces",
    "is_error",
    "require_columns",
    "restrict_to_route",
    "route_matches",
    "route_of",
    "spans_frame",
]

SERVER, CLIENT = 2, 3
STATUS_ERROR = 2

#: One row per span of the sampled traces (``spans_frame`` builds it from ``Trace`` objects).
SPAN_COLUMNS: Mapping[str, str] = {
    "trace_id": "str",
    "span_id": "str",
    "parent_span_id": "str ('' for a root)",
    "service": "str, service.name",
    "name": "str, span name",
    "kind": "int, OTLP SpanKind (2 server, 3 client)",
    "start_ns": "int, unix ns",
    "duration_ms": "float",
    "error": "bool, status ERROR",
    "route": "str, the trace's route ('GET /items/{id}'); '' if it has no server span",
    "trace_duration_ms": "float, duration of the trace's entry server span",
    "trace_error": "bool, the entry server span failed (5xx or ERROR)",
    "shard_id": "str | None, app.shard.id",
    "pool_wait_ms": "float | NaN, app.pool.wait_ms",
    "db_operation": "str | None, db.operation.name",
    "cache_name": "str | None, app.cache.name",
    "cache_hit": "bool | None, app.cache.hit",
    "url_path": "str | None, url.path of server spans",
}
#: Requests per time bucket and route (from the HTTP server histogram or server spans).
RED_COLUMNS: Mapping[str, str] = {
    "ts": "datetime64[ns, UTC], bucket start",
    "route": "str",
    "requests": "int",
    "errors": "int, 5xx",
    "mean_ms": "float",
    "p50_ms": "float",
    "p95_ms": "float",
    "p99_ms": "float",
}
#: Shard queries per time bucket and shard (db client histogram + pool wait histogram).
SHARD_COLUMNS: Mapping[str, str] = {
    "ts": "datetime64[ns, UTC]",
    "shard_id": "str",
    "queries": "int",
    "errors": "int",
    "mean_ms": "float, query span duration including pool wait",
    "p95_ms": "float",
    "pool_wait_mean_ms": "float",
}
#: Optional column of the shards frame: ``service``, the shard's owner (str). Shard ids are
#: per service; without it, counts that mix several services' shards are not used.

#: Cache lookups per time bucket and cache (app_cache_lookups_total by result).
CACHE_COLUMNS: Mapping[str, str] = {
    "ts": "datetime64[ns, UTC]",
    "cache": "str, app.cache.name",
    "hits": "int",
    "misses": "int",
    "errors": "int",
}
#: Load-balancer decisions, from the callers' log events ``upstream ejected`` and
#: ``upstream readmitted`` (``replicas.ejections_frame`` builds it from log records).
EJECTION_COLUMNS: Mapping[str, str] = {
    "ts": "datetime64[ns, UTC]",
    "service": "str, the caller whose balancer decided",
    "upstream": "str, upstream.service",
    "instance": "str, upstream.instance",
    "event": "'ejected' | 'readmitted'",
    "reason": "str",
}
#: One row per closed-loop load step (``narrows load --concurrency 1,2,4,…``).
SWEEP_COLUMNS: Mapping[str, str] = {
    "concurrency": "float, clients (N)",
    "throughput_rps": "float, completed requests per second (X)",
    "p50_ms": "float",
    "p95_ms": "float",
    "p99_ms": "float",
    "error_rate": "float, 0..1",
}


@dataclass(frozen=True)
class SloObjective:
    """An availability objective (and optionally a latency one) over a rolling period."""

    availability: float = 0.999
    #: Requests slower than this count as bad too (None: availability only).
    latency_ms: float | None = None
    period_s: float = 30 * 24 * 3600.0

    def __post_init__(self) -> None:
        if not 0.0 < self.availability < 1.0:
            raise ValueError(f"availability must be within (0, 1); got {self.availability}")
        if self.latency_ms is not None and self.latency_ms <= 0:
            raise ValueError("latency_ms must be positive")


@dataclass(frozen=True)
class AnalysisInputs:
    """Everything ``diagnose`` looks at, for one time window."""

    #: A uniform random sample of the window's traces: what typical requests look like.
    traces: Sequence[Trace]
    #: The slowest traces of each route in the window (the tail the findings explain).
    slow_traces: Sequence[Trace]
    red: pd.DataFrame | None = None
    shards: pd.DataFrame | None = None
    cache: pd.DataFrame | None = None
    load_sweep: pd.DataFrame | None = None
    slo: SloObjective = field(default_factory=SloObjective)
    #: Window bounds (unix ns); default: the span of the RED frame or of the traces.
    start_ns: int | None = None
    end_ns: int | None = None
    #: Data this backend cannot provide, named (e.g. "pool_wait", "cache"), for the report.
    missing: frozenset[str] = frozenset()
    #: Hit ratio the cache is expected to reach (None: compare with earlier in the window).
    expected_hit_ratio: float | None = None
    #: EJECTION_COLUMNS: replicas the callers' balancers ejected or readmitted — in the
    #: window, and before it (a replica ejected earlier and not readmitted is down in it).
    ejections: pd.DataFrame | None = None

    def frames_ok(self) -> None:
        """Raise ValueError naming any frame that lacks required columns."""
        for name, frame, cols in (
            ("red", self.red, RED_COLUMNS),
            ("shards", self.shards, SHARD_COLUMNS),
            ("cache", self.cache, CACHE_COLUMNS),
            ("load_sweep", self.load_sweep, SWEEP_COLUMNS),
            ("ejections", self.ejections, EJECTION_COLUMNS),
        ):
            if frame is not None:
                require_columns(frame, cols, name)


def require_columns(frame: pd.DataFrame, columns: Mapping[str, str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} frame lacks columns {missing}; expected {list(columns)}")


def entry_span(trace: Trace) -> Span | None:
    """The trace's entry server span: the earliest SERVER span (a load generator's client
    span may sit above it), else the earliest root."""
    servers = [s for s in trace.spans if s.kind == SERVER]
    if servers:
        return min(servers, key=lambda s: (s.start_ns, -s.end_ns))
    ids = {s.span_id for s in trace.spans}
    roots = [s for s in trace.spans if s.parent_span_id not in ids]
    return min(roots, key=lambda s: (s.start_ns, -s.end_ns)) if roots else None


def route_of(span: Span | None) -> str:
    if span is None:
        return ""
    route = span.attributes.get("http.route")
    method = span.attributes.get("http.request.method")
    if route and method:
        return f"{method} {route}"
    return span.name


def route_matches(route: str, wanted: str) -> bool:
    """``"GET /items/{item_id}"`` matches itself and its template ``"/items/{item_id}"``."""
    return route == wanted or route.partition(" ")[2] == wanted


def restrict_to_route(inputs: AnalysisInputs, wanted: str) -> AnalysisInputs:
    """The same window with only the traces and RED rows of one route (``"/search"`` or
    ``"GET /search"``); the shard and cache counters stay service-wide. A route with no
    request in the window is a ValueError naming the routes that had some."""

    def keep(traces: Sequence[Trace]) -> list[Trace]:
        return [t for t in traces if route_matches(route_of(entry_span(t)), wanted)]

    traces, slow = keep(inputs.traces), keep(inputs.slow_traces)
    red = inputs.red
    if red is not None:
        red = red[[route_matches(str(r), wanted) for r in red["route"]]]
    if not traces and not slow and (red is None or red.empty):
        seen = {route_of(entry_span(t)) for t in (*inputs.traces, *inputs.slow_traces)}
        if inputs.red is not None:
            seen |= {str(r) for r in inputs.red["route"]}
        known = ", ".join(sorted(r for r in seen if r)) or "none"
        raise ValueError(f"no requests of route {wanted!r} in the window; routes seen: {known}")
    return replace(inputs, traces=traces, slow_traces=slow, red=red)


def is_error(span: Span) -> bool:
    code = span.attributes.get("http.response.status_code")
    return span.status_code == STATUS_ERROR or (isinstance(code, int) and code >= 500)


def spans_frame(traces: Sequence[Trace]) -> pd.DataFrame:
    """One row per span with SPAN_COLUMNS (trace-level columns repeated on each row)."""
    cols: dict[str, list[Any]] = {c: [] for c in SPAN_COLUMNS}
    for t in traces:
        entry = entry_span(t)
        route = route_of(entry)
        t_ms = entry.duration_ms if entry else t.duration_ms
        t_err = is_error(entry) if entry else False
        for s in t.spans:
            a = s.attributes
            hit = a.get("app.cache.hit")
            wait = a.get("app.pool.wait_ms")
            shard = a.get("app.shard.id")
            cols["trace_id"].append(t.trace_id)
            cols["span_id"].append(s.span_id)
            cols["parent_span_id"].append(s.parent_span_id)
            cols["service"].append(s.service)
            cols["name"].append(s.name)
            cols["kind"].append(s.kind)
            cols["start_ns"].append(s.start_ns)
            cols["duration_ms"].append((s.end_ns - s.start_ns) / 1e6)
            cols["error"].append(s.status_code == STATUS_ERROR)
            cols["route"].append(route)
            cols["trace_duration_ms"].append(t_ms)
            cols["trace_error"].append(t_err)
            cols["shard_id"].append(None if shard is None else str(shard))
            cols["pool_wait_ms"].append(float(wait) if isinstance(wait, int | float) else np.nan)
            cols["db_operation"].append(a.get("db.operation.name"))
            cols["cache_name"].append(a.get("app.cache.name"))
            cols["cache_hit"].append(hit if isinstance(hit, bool) else None)
            cols["url_path"].append(a.get("url.path"))
    frame = pd.DataFrame(cols)
    return frame.astype(
        {"start_ns": "int64", "duration_ms": "float64", "error": "bool", "kind": "int64"}
    )


def _bucket(start_ns: pd.Series, step_s: float) -> pd.Series:
    step_ns = int(step_s * 1e9)
    return pd.to_datetime((start_ns // step_ns) * step_ns, unit="ns", utc=True)


def _red(spans: pd.DataFrame, step_s: float) -> pd.DataFrame:
    entry = spans[spans["kind"] == SERVER].drop_duplicates("trace_id")
    g = entry.assign(ts=_bucket(entry["start_ns"], step_s)).groupby(["ts", "route"])
    d = g["duration_ms"]
    return pd.DataFrame(
        {
            "requests": d.size(),
            "errors": g["trace_error"].sum().astype(int),
            "mean_ms": d.mean(),
            "p50_ms": d.quantile(0.5),
            "p95_ms": d.quantile(0.95),
            "p99_ms": d.quantile(0.99),
        }
    ).reset_index()


def _shards(spans: pd.DataFrame, step_s: float) -> pd.DataFrame:
    q = spans[spans["shard_id"].notna()]
    g = q.assign(ts=_bucket(q["start_ns"], step_s)).groupby(["ts", "service", "shard_id"])
    return pd.DataFrame(
        {
            "queries": g.size(),
            "errors": g["error"].sum().astype(int),
            "mean_ms": g["duration_ms"].mean(),
            "p95_ms": g["duration_ms"].quantile(0.95),
            "pool_wait_mean_ms": g["pool_wait_ms"].mean(),
        }
    ).reset_index()


def _cache(spans: pd.DataFrame, step_s: float) -> pd.DataFrame:
    c = spans[spans["cache_name"].notna()].copy()
    c["hit"] = (c["cache_hit"] == True) & ~c["error"]  # noqa: E712 (object column)
    c["miss"] = ~c["hit"] & ~c["error"]
    c = c.rename(columns={"cache_name": "cache"})
    g = c.assign(ts=_bucket(c["start_ns"], step_s)).groupby(["ts", "cache"])
    out = pd.DataFrame(
        {"hits": g["hit"].sum(), "misses": g["miss"].sum(), "errors": g["error"].sum()}
    )
    return out.astype(int).reset_index()


def inputs_from_traces(
    traces: Sequence[Trace],
    *,
    sample_size: int = 400,
    slow_per_route: int = 20,
    step_s: float = 2.0,
    seed: int = 0,
    **options: Any,
) -> AnalysisInputs:
    """Aggregates from all ``traces``; a random sample and each route's slowest as the
    trace inputs, as a source would fetch them. ``options`` go to AnalysisInputs."""
    frame = spans_frame(traces)
    by_route: dict[str, list[tuple[float, Trace]]] = {}
    for t in traces:
        entry = entry_span(t)
        by_route.setdefault(route_of(entry), []).append(
            (entry.duration_ms if entry else t.duration_ms, t)
        )
    slow = [
        t
        for pairs in by_route.values()
        for _, t in sorted(pairs, key=lambda p: -p[0])[:slow_per_route]
    ]
    rng = random.Random(seed)
    sample = rng.sample(list(traces), min(sample_size, len(traces)))
    starts = [t.start_ns for t in traces]
    return AnalysisInputs(
        traces=sample,
        slow_traces=slow,
        red=_red(frame, step_s),
        shards=_shards(frame, step_s),
        cache=_cache(frame, step_s),
        start_ns=min(starts) if starts else None,
        end_ns=max(t.start_ns + int(t.duration_ms * 1e6) for t in traces) if traces else None,
        **options,
    )
