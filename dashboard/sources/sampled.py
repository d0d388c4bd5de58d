"""Answers computed from a sample of whole traces, for questions a backend cannot aggregate.

Jaeger stores traces but computes no aggregates, so the ``prometheus+jaeger+loki`` source
answers "what is different about the slow requests", "where does self time go" and "how
does this span rank" from the traces it can fetch; the result says how many it looked at.
The columns match the Narrows collector's native answers, so pages cannot tell them apart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from dashboard.sources.model import Span, Trace
from dashboard.sources.query import KINDS, SpanFilter

__all__ = [
    "COMPARE_FRAME",
    "OPS_FRAME",
    "RANK_FRAME",
    "attribute_text",
    "compare_spans",
    "duration_ranks",
    "operation_times",
    "span_matches",
]

COMPARE_FRAME = (
    "key", "score", "value", "selection_count", "selection_share", "baseline_count",
    "baseline_share", "lift",
)  # fmt: skip
OPS_FRAME = (
    "service", "operation", "count", "traces", "total_ms", "self_ms", "self_share",
    "mean_self_ms", "p50_ms", "p95_ms", "errors",
)  # fmt: skip
RANK_FRAME = ("duration_ms", "percentile", "population")
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}
DEFAULT_KEYS = (
    "service.name", "span.name", "status", "http.route", "http.request.method",
    "http.response.status_code", "error.type", "app.shard.id", "app.cache.hit",
    "app.cache.name", "db.system.name", "db.operation.name", "db.collection.name",
)  # fmt: skip


def attribute_text(span: Span, key: str) -> str | None:
    """A span's value for ``key`` as the collector compares it (text; pseudo-keys too)."""
    if key == "service.name":
        return span.service
    if key == "span.name":
        return span.name
    if key == "span.kind":
        return KINDS[span.kind - 1] if 1 <= span.kind <= len(KINDS) else "unspecified"
    if key == "status":
        return _STATUS.get(span.status_code, "UNSET")
    value = span.attributes.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def span_matches(span: Span, filt: SpanFilter) -> bool:
    if filt.service and span.service != filt.service:
        return False
    if filt.operation and span.name != filt.operation:
        return False
    if filt.kind and attribute_text(span, "span.kind") != filt.kind:
        return False
    if filt.status and attribute_text(span, "status") != filt.status:
        return False
    d = span.duration_ms
    if filt.duration_min_ms is not None and d < filt.duration_min_ms:
        return False
    if filt.duration_max_ms is not None and d > filt.duration_max_ms:
        return False
    return all(attribute_text(span, k) == v for k, v in filt.attributes)


def _spans(traces: Iterable[Trace]) -> Iterable[Span]:
    for t in traces:
        yield from t.spans


def compare_spans(
    traces: Sequence[Trace], base: SpanFilter, selection: SpanFilter, keys: Sequence[str] = ()
) -> pd.DataFrame:
    """COMPARE_FRAME rows: per key, value shares among selected vs other base spans."""
    chosen = [s for s in _spans(traces) if span_matches(s, base)]
    selected = [s for s in chosen if span_matches(s, selection)]
    sel_ids = {id(s) for s in selected}
    baseline = [s for s in chosen if id(s) not in sel_ids]
    rows: list[dict[str, Any]] = []
    for key in keys or DEFAULT_KEYS:
        sel = Counter(attribute_text(s, key) for s in selected)
        bas = Counter(attribute_text(s, key) for s in baseline)
        if set(sel) | set(bas) <= {None}:
            continue
        values = set(sel) | set(bas)
        n_sel, n_bas = max(len(selected), 1), max(len(baseline), 1)
        shares = {v: (sel[v] / n_sel, bas[v] / n_bas) for v in values}
        score = 0.5 * sum(abs(a - b) for a, b in shares.values())
        for v in values:
            a, b = shares[v]
            rows.append(
                {
                    "key": key,
                    "score": score,
                    "value": "null" if v is None else v,
                    "selection_count": sel[v],
                    "selection_share": a,
                    "baseline_count": bas[v],
                    "baseline_share": b,
                    "lift": a - b,
                }
            )
    frame = pd.DataFrame(rows, columns=list(COMPARE_FRAME))
    if frame.empty:
        return frame
    frame["abs_lift"] = frame["lift"].abs()
    frame = frame.sort_values(["score", "key", "abs_lift"], ascending=[False, True, False])
    return frame.drop(columns="abs_lift").reset_index(drop=True)


def _self_ms(span: Span, children: list[Span]) -> float:
    """Duration not covered by the union of children's intervals (clipped to the span)."""
    covered, cur_start, cur_end = 0, None, None
    for c in sorted(children, key=lambda c: c.start_ns):
        s, e = max(c.start_ns, span.start_ns), min(c.end_ns, span.end_ns)
        if e <= s:
            continue
        if cur_end is None or s > cur_end:
            if cur_end is not None and cur_start is not None:
                covered += cur_end - cur_start
            cur_start, cur_end = s, e
        else:
            cur_end = max(cur_end, e)
    if cur_end is not None and cur_start is not None:
        covered += cur_end - cur_start
    return max(0.0, (span.end_ns - span.start_ns - covered) / 1e6)


def operation_times(traces: Sequence[Trace]) -> pd.DataFrame:
    """OPS_FRAME rows: count and self time per (service, operation) over the traces."""
    rows: list[dict[str, Any]] = []
    for t in traces:
        children: dict[str, list[Span]] = {}
        for s in t.spans:
            if s.parent_span_id and s.parent_span_id != s.span_id:
                children.setdefault(s.parent_span_id, []).append(s)
        for s in t.spans:
            rows.append(
                {
                    "trace": t.trace_id,
                    "service": s.service,
                    "operation": s.name,
                    "duration_ms": s.duration_ms,
                    "self_ms": _self_ms(s, children.get(s.span_id, [])),
                    "error": s.status_code == 2,
                }
            )
    if not rows:
        return pd.DataFrame(columns=list(OPS_FRAME))
    spans = pd.DataFrame(rows)
    g = spans.groupby(["service", "operation"])
    out = pd.DataFrame(
        {
            "count": g.size(),
            "traces": g["trace"].nunique(),
            "total_ms": g["duration_ms"].sum(),
            "self_ms": g["self_ms"].sum(),
            "mean_self_ms": g["self_ms"].mean(),
            "p50_ms": g["duration_ms"].quantile(0.5),
            "p95_ms": g["duration_ms"].quantile(0.95),
            "errors": g["error"].sum().astype(int),
        }
    ).reset_index()
    total = float(out["self_ms"].sum()) or 1.0
    out["self_share"] = out["self_ms"] / total
    return out[list(OPS_FRAME)].sort_values("self_ms", ascending=False).reset_index(drop=True)


def duration_ranks(
    traces: Sequence[Trace], service: str, operation: str, durations_ms: Sequence[float]
) -> pd.DataFrame:
    """RANK_FRAME rows: share of the sample's same-operation spans at or below each duration."""
    population = np.sort(
        np.array(
            [s.duration_ms for s in _spans(traces) if s.service == service and s.name == operation],
            dtype=float,
        )
    )
    n = len(population)
    rows = [
        {
            "duration_ms": d,
            "percentile": float(np.searchsorted(population, d, side="right")) / n * 100
            if n
            else np.nan,
            "population": n,
        }
        for d in durations_ms
    ]
    return pd.DataFrame(rows, columns=list(RANK_FRAME))
