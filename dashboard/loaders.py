"""Fill the analysis' ``AnalysisInputs`` from any source (the analysis itself does no I/O).

The same questions work on both backends: a trace sample spread over the window, each
route's tail (traces slower than the route's p95, found with the trace API's duration
filter), RED per route, shard and cache frames, and the callers' load-balancer decisions
from their logs. A frame the backend cannot give is left ``None`` and named in
``missing``, and the detectors that need it say they were skipped.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pandas as pd

from dashboard.analysis.inputs import AnalysisInputs, SloObjective, entry_span
from dashboard.analysis.replicas import ejections_frame
from dashboard.sources.base import SourceError, TelemetrySource, Unavailable
from dashboard.sources.model import RED_FRAME, Trace
from dashboard.sources.query import LogQuery, SpanFilter, TimeWindow, TraceQuery
from dashboard.sources.shared import sample_traces

__all__ = [
    "MapSample",
    "analysis_inputs",
    "entry_services",
    "map_sample",
    "red_columns",
    "sweep_from_load_report",
]

SAMPLE_SIZE = 200
SAMPLE_SLICES = 10
SLOW_PER_ROUTE = 20
#: Balancer log events (``upstream ejected`` / ``upstream readmitted``) read per window.
EJECTION_LOGS = 500
#: How far before the window the balancer events are read (to know who was out when the
#: window began).
EJECTION_LOOKBACK_S = 15 * 60.0


def red_columns(red: pd.DataFrame) -> pd.DataFrame:
    """A source's RED frame grouped by span name → the analysis' RED_COLUMNS."""
    return pd.DataFrame(
        {
            "ts": red["ts"],
            "route": red["group"],
            "requests": red["count"].astype(int),
            "errors": red["errors"].astype(int),
            "mean_ms": red["mean_ms"],
            "p50_ms": red["p50_ms"],
            "p95_ms": red["p95_ms"],
            "p99_ms": red["p99_ms"],
        }
    )


def _tail_threshold(red: pd.DataFrame, route: str) -> float | None:
    """The route's p95 over the window (count-weighted mean of its per-step p95)."""
    r = red[red["group"] == route]
    if r.empty or r["count"].sum() <= 0:
        return None
    return float((r["p95_ms"] * r["count"]).sum() / r["count"].sum())


#: A service counts as an entry when at least this share of the sampled traces enter there
#: (a trace cut at the window's edge may seem to enter at an inner service).
ENTRY_SHARE = 0.05


def entry_services(traces: list[Trace]) -> set[str] | None:
    """The services requests enter (the tail the findings explain is theirs), from a trace
    sample; None when the sample is empty (then every service is asked)."""
    entries = Counter(e.service for t in traces if (e := entry_span(t)) is not None)
    total = sum(entries.values())
    if not total:
        return None
    return {s for s, n in entries.items() if n >= ENTRY_SHARE * total}


def _slow_traces(
    source: TelemetrySource,
    window: TimeWindow,
    red: pd.DataFrame | None,
    services: set[str] | None = None,
) -> list[Trace]:
    """The slowest traces of each route where requests enter (``services``; default all):
    an inner service's slow calls are already in its callers' tails, and asking for every
    inner route too multiplied the trace queries (the bulk of a diagnosis' time)."""
    out: dict[str, Trace] = {}
    for service in source.services():
        if services is not None and service not in services:
            continue
        for route in sorted(o.name for o in source.operations(service, "server")):
            floor = _tail_threshold(red, route) if red is not None else None
            query = TraceQuery(
                window,
                service=service,
                operation=route,
                duration_min_ms=floor,
                limit=SLOW_PER_ROUTE,
            )
            for t in source.fetch_traces(query):
                out.setdefault(t.trace_id, t)
    return list(out.values())


def _entry_red(
    source: TelemetrySource, window: TimeWindow, services: set[str] | None
) -> pd.DataFrame:
    """RED per route of the services requests enter. Behind a gateway the catalog's
    ``GET /items/{item_id}`` has the gateway's name: pooled, every request counted twice
    or three times and inner failures a caller retried counted as the users'."""
    if not services:
        return source.red(window, SpanFilter(kind="server"), group_by="span.name", limit=100).data
    frames = [
        source.red(
            window, SpanFilter(service=s, kind="server"), group_by="span.name", limit=100
        ).data
        for s in sorted(services)
    ]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=list(RED_FRAME))
    return pd.concat(frames, ignore_index=True)


def analysis_inputs(
    source: TelemetrySource,
    window: TimeWindow,
    slo: SloObjective | None = None,
    load_sweep: pd.DataFrame | None = None,
) -> AnalysisInputs:
    """Everything ``diagnose`` reads for ``window``, asked of ``source``."""
    missing: set[str] = set()
    # The statistical tests take this as a random sample of the window: ten slices of
    # twenty, not four runs of fifty neighbours that share one moment's hiccup (each slice
    # is one trace query, so not a hundred slices of two either).
    traces = sample_traces(source, window, SAMPLE_SIZE, slices=SAMPLE_SLICES)
    entries = entry_services(traces)
    red: pd.DataFrame | None = None
    try:
        red = _entry_red(source, window, entries)
    except Unavailable:
        missing.add("red")
    shards = cache = None
    try:
        shards = source.shard_stats(window).data
    except Unavailable:
        missing.add("shards")
    try:
        cache = source.cache_stats(window).data
    except Unavailable:
        missing.add("cache")
    ejections = None
    try:
        # From before the window too: a replica ejected then and still out is down in it.
        back = TimeWindow(window.start - timedelta(seconds=EJECTION_LOOKBACK_S), window.end)
        logs = source.logs(LogQuery(window=back, text="upstream", limit=EJECTION_LOGS))
        ejections = ejections_frame(logs)
    except Unavailable:
        missing.add("logs")
    slow = _slow_traces(source, window, red, entries)
    return AnalysisInputs(
        traces=traces,
        slow_traces=slow,
        red=red_columns(red) if red is not None else None,
        shards=shards,
        cache=cache,
        load_sweep=load_sweep,
        slo=slo or SloObjective(),
        start_ns=window.start_ns,
        end_ns=window.end_ns,
        missing=frozenset(missing),
        ejections=ejections,
    )


@dataclass(frozen=True)
class MapSample:
    """The traces a service map is drawn from, and how many real requests each stands for."""

    traces: list[Trace]
    #: The window's requests into the entry service / the sampled ones (1 when unknown).
    scale: float
    note: str


def map_sample(source: TelemetrySource, window: TimeWindow, size: int = SAMPLE_SIZE) -> MapSample:
    """A trace sample spread over ``window`` (both backends answer this from their trace API)
    and the scale that turns its call counts into rates: the entry service's server requests
    in the window (RED) over the sampled traces that entered there. Without RED — Prometheus
    down, or no HTTP histogram — the map still draws, with the sample's own counts."""
    traces = sample_traces(source, window, size)
    entries = Counter(e.service for t in traces if (e := entry_span(t)) is not None)
    if not entries:
        return MapSample(traces, 1.0, f"from {len(traces)} sampled traces")
    service, sampled = entries.most_common(1)[0]
    try:
        red = source.red(window, SpanFilter(service=service, kind="server"), limit=1).data
        total = int(red["count"].sum()) if not red.empty else 0
    except (SourceError, Unavailable) as exc:
        reason = exc.reason if isinstance(exc, SourceError) else exc.why
        note = f"from {len(traces)} sampled traces; rates count the sample only ({reason})"
        return MapSample(traces, 1.0, note)
    if total < sampled:
        return MapSample(traces, 1.0, f"from {len(traces)} sampled traces (all of the window's)")
    return MapSample(
        traces,
        total / sampled,
        f"from {len(traces)} sampled traces; rates scaled to the {total} requests "
        f"{service} served in the window",
    )


def sweep_from_load_report(report: Mapping[str, Any] | str) -> pd.DataFrame:
    """``narrows load --concurrency … --json`` output → the analysis' SWEEP_COLUMNS."""
    data = json.loads(report) if isinstance(report, str) else report
    if not isinstance(data, Mapping) or not isinstance(data.get("steps"), list):
        raise ValueError("not a `narrows load --json` report (no steps list)")
    rows = []
    for step in data["steps"]:
        if not isinstance(step, Mapping) or not step.get("concurrency"):
            continue
        lat = step.get("latency_ms") or {}
        rows.append(
            {
                "concurrency": float(step["concurrency"]),
                "throughput_rps": float(step.get("throughput_rps", 0.0)),
                "p50_ms": float(lat.get("p50", 0.0)),
                "p95_ms": float(lat.get("p95", 0.0)),
                "p99_ms": float(lat.get("p99", 0.0)),
                "error_rate": float(step.get("error_rate", 0.0)),
            }
        )
    if not rows:
        raise ValueError("the report has no closed-loop steps (run `narrows load --concurrency`)")
    return pd.DataFrame(rows)
