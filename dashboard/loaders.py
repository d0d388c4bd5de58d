"""Fill the analysis' ``AnalysisInputs`` from any source (the analysis itself does no I/O).

The same questions work on both backends: a trace sample spread over the window, each
route's tail (traces slower than the route's p95, found with the trace API's duration
filter), RED per route, shard and cache frames. A frame the backend cannot give is left
``None`` and named in ``missing``, and the detectors that need it say they were skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from dashboard.analysis.inputs import AnalysisInputs, SloObjective
from dashboard.sources.base import TelemetrySource, Unavailable
from dashboard.sources.model import Trace
from dashboard.sources.query import SpanFilter, TimeWindow, TraceQuery
from dashboard.sources.shared import sample_traces

__all__ = ["analysis_inputs", "red_columns", "sweep_from_load_report"]

SAMPLE_SIZE = 200
SLOW_PER_ROUTE = 20


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


def _slow_traces(
    source: TelemetrySource, window: TimeWindow, red: pd.DataFrame | None
) -> list[Trace]:
    out: dict[str, Trace] = {}
    for service in source.services():
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


def analysis_inputs(
    source: TelemetrySource,
    window: TimeWindow,
    slo: SloObjective | None = None,
    load_sweep: pd.DataFrame | None = None,
) -> AnalysisInputs:
    """Everything ``diagnose`` reads for ``window``, asked of ``source``."""
    missing: set[str] = set()
    red: pd.DataFrame | None = None
    try:
        frame = source.red(window, SpanFilter(kind="server"), group_by="span.name", limit=100)
        red = frame.data
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
    traces = sample_traces(source, window, SAMPLE_SIZE)
    slow = _slow_traces(source, window, red)
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
