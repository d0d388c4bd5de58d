"""The Narrows aggregates API (``/api/narrows/...``), computed in DuckDB.

Answers the dashboard's and the analysis' questions without shipping spans: RED over time
grouped by an attribute, latency histograms and heatmaps, self-time per operation over a
set of traces, selection-vs-baseline attribute distributions. Contract: docs/query-api.md.
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

from collector.flatten.common import PROMOTED
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
from collector.query.spansql import attr_expr, span_filter

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
#: Low-cardinality keys compared by default (raw paths and continuous values would make
#: every value unique and every key look "different").
_DEFAULT_COMPARE_KEYS = [
    "service.name",
    "span.name",
    "status",
    *(k for k in PROMOTED if k not in ("url.path", "app.pool.wait_ms")),
]
_QUANTILES = [0.5, 0.9, 0.95, 0.99]


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


def _red(cur: duckdb.DuckDBPyConnection, q: Mapping[str, str], bounds: Bounds, now: int) -> Any:
    start_ns, end_ns = parse_range(q, bounds, now)
    step = _step(q, start_ns, end_ns, bounds)
    limit = parse_int(q, "limit", 10, 1, 100)
    f = span_filter(q, start_ns, end_ns)
    gparams: list[object] = []
    group = attr_expr(q["groupBy"], gparams) if q.get("groupBy") else "NULL"
    sql = f"""
        WITH f AS (
            SELECT {group} AS g, (s.start_ns - ?) // ? AS b, s.duration_ns AS d,
                   s.status_code = 2 AS err
            FROM spans s WHERE {f.sql()}
        ),
        top AS (SELECT g, count(*) AS n FROM f GROUP BY g ORDER BY n DESC, g LIMIT ?)
        SELECT f.g, f.b, count(*), count(*) FILTER (WHERE f.err),
               quantile_cont(f.d, {_QUANTILES}), avg(f.d), max(f.d), any_value(top.n)
        FROM f JOIN top ON f.g IS NOT DISTINCT FROM top.g
        GROUP BY f.g, f.b ORDER BY any_value(top.n) DESC, f.g, f.b
    """
    rows = cur.execute(sql, [*gparams, start_ns, step, *f.params, limit]).fetchall()
    total_groups = cur.execute(
        f"SELECT count(DISTINCT {group}) + max(CASE WHEN {group} IS NULL THEN 1 ELSE 0 END)"
        f" FROM spans s WHERE {f.sql()}",
        [*gparams, *gparams, *f.params],
    ).fetchone()
    step_s = step / 1e9
    series: dict[Any, dict[str, Any]] = {}
    for g, b, n, errs, qs, mean, mx, total in rows:
        s = series.setdefault(g, {"group": g, "count": int(total), "points": []})
        t = start_ns + int(b) * step
        s["points"].append(
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
    n_groups = int(total_groups[0] or 0) if total_groups else 0
    return {
        "start": format_ns(start_ns),
        "end": format_ns(end_ns),
        "step_s": step_s,
        "groupBy": q.get("groupBy"),
        "truncated": n_groups > len(series),
        "series": list(series.values()),
    }


def _bounds_ms(q: Mapping[str, str]) -> list[float]:
    if not q.get("bounds"):
        return DEFAULT_BOUNDS_MS
    try:
        values = [float(x) for x in q["bounds"].split(",")]
    except ValueError:
        raise BadParam("bounds", "a comma-separated list of milliseconds") from None
    if not 1 <= len(values) <= 100 or values != sorted(set(values)) or values[0] <= 0:
        raise BadParam("bounds", "1 to 100 increasing positive numbers")
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


def _trace_ids(q: Mapping[str, str]) -> list[int]:
    raw = [t for t in q.get("traceIds", "").split(",") if t]
    if len(raw) > 1000:
        raise BadParam("traceIds", "at most 1000 trace ids")
    try:
        return [int(t, 16) for t in raw if len(t) <= 32]
    except ValueError:
        raise BadParam("traceIds", "comma-separated hex trace ids") from None


def _selected_traces(
    cur: duckdb.DuckDBPyConnection, q: Mapping[str, str], bounds: Bounds, now: int
) -> list[int]:
    ids = _trace_ids(q)
    if ids:
        return ids
    start_ns, end_ns = parse_range(q, bounds, now)
    f = span_filter(q, start_ns, end_ns)
    limit = parse_int(q, "limit", 200, 1, 1000)
    order = q.get("order", "slowest")
    if order not in ("slowest", "recent"):
        raise BadParam("order", "slowest or recent")
    key = "max(s.duration_ns)" if order == "slowest" else "max(s.start_ns)"
    rows = cur.execute(
        f"SELECT s.trace_id FROM spans s WHERE {f.sql()} GROUP BY s.trace_id"
        f" ORDER BY {key} DESC LIMIT ?",
        [*f.params, limit],
    ).fetchall()
    return [int(r[0]) for r in rows]


_SELF_TIME_SQL = """
WITH t AS (SELECT unnest(?::VARCHAR[])::UHUGEINT AS trace_id),
win AS (
    SELECT min(i.min_received_ns) AS lo, max(i.max_received_ns) AS hi
    FROM trace_index i SEMI JOIN t USING (trace_id)
),
sp AS (
    SELECT s.trace_id, s.span_id, s.parent_span_id, s.service_name, s.name,
           s.start_ns, s.end_ns, s.duration_ns, s.status_code,
           row_number() OVER () AS rid
    FROM spans s SEMI JOIN t USING (trace_id)
    WHERE s.received_ns BETWEEN (SELECT lo FROM win) AND (SELECT hi FROM win)
),
kids AS (
    SELECT p.rid, greatest(c.start_ns, p.start_ns) AS cs, least(c.end_ns, p.end_ns) AS ce
    FROM sp p JOIN sp c
      ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id AND c.rid <> p.rid
    WHERE c.end_ns > p.start_ns AND c.start_ns < p.end_ns
),
ordered AS (
    SELECT rid, cs, ce,
           max(ce) OVER (PARTITION BY rid ORDER BY cs, ce
                         ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
    FROM kids
),
covered AS (
    SELECT rid, sum(greatest(0, ce - greatest(cs, coalesce(prev_end, cs)))) AS busy
    FROM ordered GROUP BY rid
)
SELECT sp.service_name, sp.name, count(*) AS n, count(DISTINCT sp.trace_id),
       sum(sp.duration_ns), sum(greatest(0, sp.duration_ns - coalesce(c.busy, 0))) AS self_ns,
       quantile_cont(sp.duration_ns, [0.5, 0.95]), count(*) FILTER (WHERE sp.status_code = 2)
FROM sp LEFT JOIN covered c USING (rid)
GROUP BY sp.service_name, sp.name
ORDER BY self_ns DESC
"""


def _operations(
    cur: duckdb.DuckDBPyConnection, q: Mapping[str, str], bounds: Bounds, now: int
) -> Any:
    ids = _selected_traces(cur, q, bounds, now)
    if not ids:
        return {"traces": 0, "operations": []}
    rows = cur.execute(_SELF_TIME_SQL, [[str(t) for t in ids]]).fetchall()
    total_self = sum(r[5] for r in rows) or 1
    return {
        "traces": len(ids),
        "operations": [
            {
                "service": svc,
                "operation": name,
                "count": n,
                "traces": nt,
                "total_ms": _ms(total),
                "self_ms": _ms(self_ns),
                "self_share": self_ns / total_self,
                "mean_self_ms": _ms(self_ns / n),
                "p50_ms": _ms(qs[0]),
                "p95_ms": _ms(qs[1]),
                "errors": errs,
            }
            for svc, name, n, nt, total, self_ns, qs, errs in rows
        ],
    }


def _compare(cur: duckdb.DuckDBPyConnection, q: Mapping[str, str], bounds: Bounds, now: int) -> Any:
    start_ns, end_ns = parse_range(q, bounds, now)
    base = span_filter(q, start_ns, end_ns)
    sel = span_filter(q, start_ns, end_ns, prefix="selection.")
    sel_conds = sel.where[2:]  # the time range is the base's
    sel_params = sel.params[2:]
    if not sel_conds:
        raise BadParam("selection", "give at least one selection.* filter")
    keys = [k for k in q.get("keys", "").split(",") if k] or _DEFAULT_COMPARE_KEYS
    if len(keys) > 40:
        raise BadParam("keys", "at most 40 keys")
    top = parse_int(q, "limit", 10, 1, 50)
    parts: list[str] = []
    params: list[object] = []
    for key in keys:
        eparams: list[object] = []
        expr = attr_expr(key, eparams)
        parts.append(f"SELECT ? AS key, {expr} AS value, sel FROM f AS s")
        params.extend([key, *eparams])
    sql = f"""
        WITH f AS (SELECT s.*, ({" AND ".join(sel_conds)}) AS sel FROM spans s WHERE {base.sql()}),
        kv AS ({" UNION ALL ".join(parts)})
        SELECT key, value, count(*) FILTER (WHERE sel), count(*) FILTER (WHERE NOT sel)
        FROM kv GROUP BY key, value
    """
    rows = cur.execute(sql, [*sel_params, *base.params, *params]).fetchall()
    totals = cur.execute(
        f"SELECT count(*) FILTER (WHERE {' AND '.join(sel_conds)}), count(*)"
        f" FROM spans s WHERE {base.sql()}",
        [*sel_params, *base.params],
    ).fetchone()
    n_sel = int(totals[0]) if totals else 0
    n_base = (int(totals[1]) if totals else 0) - n_sel
    by_key: dict[str, list[tuple[Any, int, int]]] = {}
    for key, value, s, b in rows:
        by_key.setdefault(key, []).append((value, int(s), int(b)))
    out = []
    for key in keys:
        values = by_key.get(key, [])
        dist = [
            {
                "value": v,
                "selection_count": s,
                "selection_share": s / n_sel if n_sel else 0.0,
                "baseline_count": b,
                "baseline_share": b / n_base if n_base else 0.0,
            }
            for v, s, b in values
        ]
        for d in dist:
            d["lift"] = d["selection_share"] - d["baseline_share"]
        score = sum(abs(d["lift"]) for d in dist) / 2
        dist.sort(key=lambda d: -abs(d["lift"]))
        if all(d["value"] is None for d in dist):
            continue
        out.append({"key": key, "score": score, "values": dist[:top]})
    out.sort(key=lambda k: -k["score"])
    return {
        "start": format_ns(start_ns),
        "end": format_ns(end_ns),
        "selection_count": n_sel,
        "baseline_count": n_base,
        "keys": out,
    }


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
        return await self._answer(_operations, request)

    async def compare(self, request: Request) -> Response:
        return await self._answer(_compare, request)
