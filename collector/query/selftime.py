"""``/api/narrows/operations``: count and self time per operation over a set of traces.

The traces are listed or selected (slowest or most recent matching span first); the
selection reads the top spans of one column instead of grouping every trace of the range,
and the self-time query then reads only the spans of the chosen traces. Contract:
docs/query-api.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import duckdb

from collector.query.params import BadParam, Bounds, parse_int, parse_range
from collector.query.spansql import span_filter

__all__ = ["operations", "selected_traces"]

_TRACE_ID = re.compile(r"[0-9a-fA-F]{1,32}")


def _ms(ns: float | None) -> float | None:
    return None if ns is None or (isinstance(ns, float) and math.isnan(ns)) else ns / 1e6


def _trace_ids(q: Mapping[str, str]) -> list[int]:
    raw = [t for t in q.get("traceIds", "").split(",") if t]
    if len(raw) > 1000:
        raise BadParam("traceIds", "at most 1000 trace ids")
    bad = next((t for t in raw if not _TRACE_ID.fullmatch(t)), None)
    if bad is not None:
        # Never skip an id silently: with none left, the range would select other traces.
        raise BadParam("traceIds", f"{bad[:40]!r} is not a hex trace id of up to 32 digits")
    return [int(t, 16) for t in raw]


def selected_traces(
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
    column = "s.duration_ns" if order == "slowest" else "s.start_ns"
    # A trace's rank is its best matching span, so the traces in rank order are the
    # distinct trace ids of the matching spans in rank order: read the top spans (a heap
    # over one column, no group-by over every trace of the range) and widen until enough
    # distinct traces are found or the spans run out. Ties go to the smaller trace id.
    fetch = limit * 4
    while True:
        rows = cur.execute(
            f"SELECT s.trace_id FROM spans s WHERE {f.sql()}"
            f" ORDER BY {column} DESC, s.trace_id LIMIT ?",
            [*f.params, fetch],
        ).fetchall()
        ids = list(dict.fromkeys(int(r[0]) for r in rows))
        if len(ids) >= limit or len(rows) < fetch:
            return ids[:limit]
        fetch *= 4


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


def operations(
    cur: duckdb.DuckDBPyConnection, q: Mapping[str, str], bounds: Bounds, now: int
) -> Any:
    ids = selected_traces(cur, q, bounds, now)
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
