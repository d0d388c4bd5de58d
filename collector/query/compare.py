"""``/api/narrows/compare``: what is different about a selection of spans, key by key.

One pass over the base set groups the spans by the combination of every compared key in
its stored type (no per-row casts), then the few combinations are unpivoted into
(key, value) counts — instead of one pass per key. Above ``SAMPLE_ROWS`` spans on a side,
that side is read through a deterministic sample (a hash of the span id) and its per-value
counts are scaled up: shares stay within about ±0.2 percentage points, totals stay exact. Contract:
docs/query-api.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb

from collector.flatten.common import PROMOTED
from collector.query.params import BadParam, Bounds, format_ns, parse_int, parse_range
from collector.query.spansql import attr_raw, span_filter

__all__ = ["DEFAULT_COMPARE_KEYS", "SAMPLE_ROWS", "compare"]

#: Low-cardinality keys compared by default (raw paths and continuous values would make
#: every value unique and every key look "different").
DEFAULT_COMPARE_KEYS = [
    "service.name",
    "span.name",
    "status",
    *(k for k in PROMOTED if k not in ("url.path", "app.pool.wait_ms")),
]
#: Spans per side counted exactly; a larger side is sampled down to about this many.
SAMPLE_ROWS = 1 << 18
_SAMPLE_SCALE = 1 << 16


def _sample_threshold(n: int, sample_rows: int) -> int:
    """Out of 65,536 hash buckets of the span id, how many to read (65,536 = all)."""
    if n <= sample_rows:
        return _SAMPLE_SCALE
    return max(1, sample_rows * _SAMPLE_SCALE // n)


def compare(
    cur: duckdb.DuckDBPyConnection,
    q: Mapping[str, str],
    bounds: Bounds,
    now: int,
    sample_rows: int = SAMPLE_ROWS,
) -> Any:
    start_ns, end_ns = parse_range(q, bounds, now)
    base = span_filter(q, start_ns, end_ns)
    sel = span_filter(q, start_ns, end_ns, prefix="selection.")
    if len(sel.where) <= 2:  # the time range is the base's
        raise BadParam("selection", "give at least one selection.* filter")
    # A span lacking a selection attribute is not selected (NULL → false): baseline.
    sel_sql = f"coalesce(({' AND '.join(sel.where[2:])}), false)"
    sel_params = sel.params[2:]
    keys = [k for k in q.get("keys", "").split(",") if k] or DEFAULT_COMPARE_KEYS
    if len(keys) > 40:
        raise BadParam("keys", "at most 40 keys")
    top = parse_int(q, "limit", 10, 1, 50)
    totals = cur.execute(
        f"SELECT count(*) FILTER (WHERE {sel_sql}), count(*) FROM spans s WHERE {base.sql()}",
        [*sel_params, *base.params],
    ).fetchone()
    n_sel = int(totals[0]) if totals else 0
    n_base = (int(totals[1]) if totals else 0) - n_sel
    t_sel = _sample_threshold(n_sel, sample_rows)
    t_base = _sample_threshold(n_base, sample_rows)

    raw_params: list[object] = []
    cols: list[str] = []
    texts: list[str] = []
    for i, key in enumerate(keys):
        raw, text = attr_raw(key, raw_params)
        cols.append(f"{raw} AS c{i}")
        texts.append(f"{{'k': {i}, 'v': {text.format(f'c{i}')}}}")
    # Two scans, one per side, so that every filter (sample included) is a plain
    # single-column condition DuckDB applies inside the scan: only the sampled rows of
    # each side have their key columns read at all.
    sides: list[str] = []
    params: list[object] = []
    for is_sel, threshold in ((True, t_sel), (False, t_base)):
        cond = sel_sql if is_sel else f"NOT {sel_sql}"
        where = f"{base.sql()} AND {cond}"
        params += [*raw_params, *base.params, *sel_params]
        if threshold < _SAMPLE_SCALE:
            where += f" AND (hash(s.span_id) & {_SAMPLE_SCALE - 1}) < ?"
            params.append(threshold)
        sides.append(
            f"SELECT {', '.join(cols)}, {is_sel} AS sel, count(*) AS n"
            f" FROM spans s WHERE {where} GROUP BY ALL"
        )
    rows = cur.execute(
        f"""
        WITH c AS ({" UNION ALL ".join(sides)}),
        u AS (SELECT sel, n, unnest([{", ".join(texts)}]) AS kv FROM c)
        SELECT kv.k, kv.v, sum(n) FILTER (WHERE sel), sum(n) FILTER (WHERE NOT sel)
        FROM u GROUP BY ALL
        """,
        params,
    ).fetchall()
    # A sampled side is scaled by (its exact size / the rows its sample held): a ratio
    # estimate, so the estimated counts of one key add up to the exact size.
    sampled = [0, 0]
    for k, _value, s, b in rows:
        if int(k) == 0:
            sampled[0] += int(s or 0)
            sampled[1] += int(b or 0)
    scale_sel = n_sel / sampled[0] if t_sel < _SAMPLE_SCALE and sampled[0] else 1.0
    scale_base = n_base / sampled[1] if t_base < _SAMPLE_SCALE and sampled[1] else 1.0
    by_key: dict[int, list[tuple[Any, int, int]]] = {}
    for k, value, s, b in rows:
        s_est = round(int(s or 0) * scale_sel)
        b_est = round(int(b or 0) * scale_base)
        by_key.setdefault(int(k), []).append((value, s_est, b_est))
    out = []
    for i, key in enumerate(keys):
        values = by_key.get(i, [])
        if all(v is None for v, _, _ in values):
            continue  # no span carries the key
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
        dist.sort(key=lambda d: (-abs(d["lift"]), d["value"] is None, str(d["value"])))
        out.append({"key": key, "score": score, "values": dist[:top]})
    out.sort(key=lambda k: -k["score"])
    return {
        "start": format_ns(start_ns),
        "end": format_ns(end_ns),
        "selection_count": n_sel,
        "baseline_count": n_base,
        "selection_sample_rate": t_sel / _SAMPLE_SCALE,
        "baseline_sample_rate": t_base / _SAMPLE_SCALE,
        "keys": out,
    }
