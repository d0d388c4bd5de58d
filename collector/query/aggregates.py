"""The Narrows aggregates API (``/api/narrows/...``), computed in DuckDB.

Answers the dashboard's and the analysis' questions without shipping spans: RED over time
grouped by an attribute and latency histograms and heatmaps here; self-time per operation
over a set of traces (query/selftime.py) and selection-vs-baseline attribute distributions
(query/compare.py). Contract: docs/query-api.md.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import duckdb
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.query.compare import compare
from collector.query.http import guarded, ok
from collector.query.params import (
    BadParam,
    Bounds,
    format_ns,
    parse_duration,
    parse_int,
    parse_range,
)
from collector.query.runner import QueryRunner
from collector.query.selftime import operations
from collector.query.spansql import SpanFilter, attr_expr, span_filter

__all__ = ["DEFAULT_BOUNDS_MS", "AggregatesApi"]

DEFAULT_BOUNDS_MS = [
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    25,
    50,
    75,
    100,
    250,
    500,
    750,
    1000,
    2500,
    5000,
    10000,
]
_QUANTILES = [0.5, 0.9, 0.95, 0.99]
#: ``groupBy`` keys with a handful of values by the telemetry contract (docs/telemetry.md:
#: route templates, never raw paths), answered in one pass.
_FEW_VALUES = {
    "",
    "service.name",
    "span.kind",
    "status",
    "otel.status_code",
    "http.route",
    "http.request.method",
    "http.response.status_code",
    "error.type",
    "app.shard.id",
    "app.cache.hit",
    "app.cache.name",
    "db.system.name",
    "db.namespace",
    "db.operation.name",
    "db.collection.name",
}
_ONE_PASS_ROWS = 20_000
_MAX_BOUND_MS = 1e9  # 11.6 days: a span bucket bound beyond is a typo (or an attack)


def _ms(ns: float | None) -> float | None:
    return None if ns is None or (isinstance(ns, float) and math.isnan(ns)) else ns / 1e6


def _step(q: Mapping[str, str], start_ns: int, end_ns: int, bounds: Bounds) -> int:
    """``step`` (Go duration, default: the range / 60, at least 1s) within the points limit."""
    if q.get("step"):
        step = parse_duration("step", q["step"])
        if step < 1_000_000_000:
            raise BadParam("step", "must be at least 1s")
    else:
        step = max(1_000_000_000, (end_ns - start_ns) // 60)
    if (end_ns - start_ns) / step > bounds.max_points:
        raise BadParam("step", f"the range holds more than {bounds.max_points} steps")
    return step


def _top_groups(
    cur: duckdb.DuckDBPyConnection, group: str, gparams: list[object], f: SpanFilter, limit: int
) -> tuple[list[tuple[Any, int]], int, int]:
    """The ``limit`` busiest groups with their span counts; how many groups and spans in all.

    A cheap count-only pass: the expensive percentiles are then computed for these groups
    alone, in one more pass (two scans in all, where a join against the top list would
    scan three times)."""
    rows = cur.execute(
        "SELECT g, n, count(*) OVER (), sum(n) OVER () FROM"
        f" (SELECT {group} AS g, count(*) AS n FROM spans s WHERE {f.sql()} GROUP BY g)"
        " ORDER BY n DESC, g LIMIT ?",
        [*gparams, *f.params, limit],
    ).fetchall()
    groups, total = (int(rows[0][2]), int(rows[0][3])) if rows else (0, 0)
    return [(g, int(n)) for g, n, _, _ in rows], groups, total


def _red(cur: duckdb.DuckDBPyConnection, q: Mapping[str, str], bounds: Bounds, now: int) -> Any:
    start_ns, end_ns = parse_range(q, bounds, now)
    step = _step(q, start_ns, end_ns, bounds)
    limit = parse_int(q, "limit", 10, 1, 100)
    f = span_filter(q, start_ns, end_ns)
    gparams: list[object] = []
    group = attr_expr(q["groupBy"], gparams) if q.get("groupBy") else "NULL"
    select = f"""
        SELECT {group} AS g, (s.start_ns - ?) // ? AS b, count(*),
               count(*) FILTER (WHERE s.status_code = 2),
               quantile_cont(s.duration_ns, {_QUANTILES}), avg(s.duration_ns), max(s.duration_ns)
        FROM spans s WHERE {{where}} GROUP BY g, b
    """
    rows: list[Any] | None = None
    if q.get("groupBy", "") in _FEW_VALUES:
        # Keys with few values by the telemetry contract: one pass over every group (the
        # quantiles cost the same per span either way), the busiest picked here. If the
        # data disagrees (raw paths as routes), fall back to the two passes below.
        rows = cur.execute(
            select.format(where=f.sql()) + " LIMIT ?",
            [*gparams, start_ns, step, *f.params, _ONE_PASS_ROWS + 1],
        ).fetchall()
        if len(rows) > _ONE_PASS_ROWS:
            rows = None
    if rows is not None:
        totals: dict[Any, int] = {}
        for r in rows:
            totals[r[0]] = totals.get(r[0], 0) + int(r[2])
        ranked = sorted(totals.items(), key=lambda gn: (-gn[1], gn[0] is None, str(gn[0])))
        top = ranked[:limit]
        groups, total = len(ranked), sum(totals.values())
    else:
        top, groups, total = _top_groups(cur, group, gparams, f, limit)
        truncated = groups > len(top)
        where, wparams = f.sql(), list(f.params)
        if truncated:
            # Only the kept groups: a NULL group is kept when it is among the busiest.
            kept = [g for g, _ in top if g is not None]
            where += f" AND (list_contains(?::VARCHAR[], {group}) OR ({group} IS NULL AND ?))"
            wparams += [kept, *gparams, *gparams, len(kept) < len(top)]
        rows = cur.execute(
            select.format(where=where), [*gparams, start_ns, step, *wparams]
        ).fetchall()
    truncated = groups > len(top)
    step_s = step / 1e9
    series: dict[Any, dict[str, Any]] = {g: {"group": g, "count": n, "points": []} for g, n in top}
    for g, b, n, errs, qs, mean, mx in sorted(rows, key=lambda r: r[1]):
        if g not in series:
            continue
        t = start_ns + int(b) * step
        series[g]["points"].append(
            {
                "t": format_ns(t),
                "t_ns": t,
                "count": n,
                "rate": n / step_s,
                "errors": errs,
                "error_rate": errs / n,
                "p50_ms": _ms(qs[0]),
                "p90_ms": _ms(qs[1]),
                "p95_ms": _ms(qs[2]),
                "p99_ms": _ms(qs[3]),
                "mean_ms": _ms(mean),
                "max_ms": _ms(mx),
            }
        )
    return {
        "start": format_ns(start_ns),
        "end": format_ns(end_ns),
        "step_s": step_s,
        "groupBy": q.get("groupBy"),
        "truncated": truncated,
        "others": {"groups": groups - len(top), "count": total - sum(n for _, n in top)},
        "series": list(series.values()),
    }


def _bounds_ms(q: Mapping[str, str]) -> list[float]:
    if not q.get("bounds"):
        return DEFAULT_BOUNDS_MS
    try:
        values = [float(x) for x in q["bounds"].split(",")]
    except ValueError:
        raise BadParam("bounds", "a comma-separated list of milliseconds") from None
    if (
        not 1 <= len(values) <= 100
        or not all(0 < v <= _MAX_BOUND_MS for v in values)  # also refuses NaN and inf
        or values != sorted(set(values))
    ):
        raise BadParam("bounds", f"1 to 100 increasing numbers in (0, {_MAX_BOUND_MS:g}] ms")
    return values


def _latency(cur: duckdb.DuckDBPyConnection, q: Mapping[str, str], bounds: Bounds, now: int) -> Any:
    start_ns, end_ns = parse_range(q, bounds, now)
    f = span_filter(q, start_ns, end_ns)
    edges = _bounds_ms(q)
    edges_ns = [int(e * 1e6) for e in edges]
    heat = bool(q.get("step"))
    step = _step(q, start_ns, end_ns, bounds) if heat else end_ns - start_ns
    rows = cur.execute(
        f"SELECT (s.start_ns - ?) // ? AS b, histogram(s.duration_ns, ?::BIGINT[]), count(*)"
        f" FROM spans s WHERE {f.sql()} GROUP BY b ORDER BY b",
        [start_ns, step, edges_ns, *f.params],
    ).fetchall()

    def counts(hist: dict[int, int]) -> list[int]:
        out = [0] * (len(edges) + 1)
        for upper, n in hist.items():
            idx = edges_ns.index(upper) if upper in edges_ns else len(edges)
            out[idx] += n
        return out

    result: dict[str, Any] = {
        "start": format_ns(start_ns),
        "end": format_ns(end_ns),
        "bounds_ms": edges,
    }
    if heat:
        result["step_s"] = step / 1e9
        result["rows"] = [
            {"t": format_ns(start_ns + b * step), "t_ns": start_ns + b * step, "counts": counts(h)}
            for b, h, _ in rows
        ]
    else:
        total = [0] * (len(edges) + 1)
        for _, h, _ in rows:
            for i, n in enumerate(counts(h)):
                total[i] += n
        result["counts"] = total
        result["count"] = sum(total)
    return result


class AggregatesApi:
    """Routes under ``/api/narrows/`` for span aggregates."""

    def __init__(self, runner: QueryRunner, bounds: Bounds) -> None:
        self._runner = runner
        self._bounds = bounds

    def routes(self) -> list[Route]:
        return [
            Route("/api/narrows/red", guarded(self.red)),
            Route("/api/narrows/latency", guarded(self.latency)),
            Route("/api/narrows/operations", guarded(self.operations)),
            Route("/api/narrows/compare", guarded(self.compare)),
        ]

    async def _answer(self, fn: Any, request: Request) -> Response:
        q = dict(request.query_params)
        return ok(await self._runner.run(fn, q, self._bounds, time.time_ns()))

    async def red(self, request: Request) -> Response:
        return await self._answer(_red, request)

    async def latency(self, request: Request) -> Response:
        return await self._answer(_latency, request)

    async def operations(self, request: Request) -> Response:
        return await self._answer(operations, request)

    async def compare(self, request: Request) -> Response:
        return await self._answer(compare, request)
