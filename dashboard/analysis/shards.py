"""Shards: load share vs fair share, per-shard latency and errors; hot, slow and failing
shards found by significance tests (Holm-corrected over all shards) plus an effect size.

* hot: shard k's query count against a fair 1/N share (binomial test; chi-square over
  all shards reported as evidence), alarm at ≥ ``HOT_RATIO`` × the fair share;
* slow: shard k's *query time* (span duration minus pool wait, so waiting for a
  connection is left to the queueing detector) relative to the median of the same
  route and operation on all shards, against the other shards' (Mann-Whitney); alarm at
  ≥ ``SLOW_RATIO`` × and ≥ ``SLOW_MIN_MS`` more;
* failing: shard k's error rate against the others' (binomial test), alarm at ≥ 1 % and
  ≥ 3 × the others'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import numpy as np
import pandas as pd
from scipy import stats as sps

from dashboard.analysis.findings import ERROR_WEIGHT, Evidence, Finding, Impact, severity_for
from dashboard.analysis.inputs import SPAN_COLUMNS
from dashboard.analysis.profiles import Profile, tail_impact
from dashboard.analysis.stats import (
    ALPHA,
    MIN_SAMPLES,
    binom_greater,
    confidence_from_p,
    holm,
    mann_whitney_greater,
)
from dashboard.sources.model import Span

__all__ = ["detect_failing_shards", "detect_hot_shards", "detect_slow_shards", "shard_table"]

HOT_RATIO = 1.5
SLOW_RATIO = 1.5
SLOW_MIN_MS = 1.0
FAIL_MIN_RATE = 0.01
FAIL_RATIO = 3.0


def _queries(spans: pd.DataFrame) -> pd.DataFrame:
    if spans.empty or "shard_id" not in spans.columns:
        spans = pd.DataFrame(columns=list(SPAN_COLUMNS)).astype(
            {"duration_ms": float, "pool_wait_ms": float, "error": bool}
        )
    q = spans[spans["shard_id"].notna()].copy()
    q["wait_ms"] = q["pool_wait_ms"].fillna(0.0).clip(lower=0.0)
    q["query_ms"] = (q["duration_ms"] - q["wait_ms"]).clip(lower=0.0)
    # Relative to the same route and operation on every shard: search queries are slower
    # than key lookups everywhere, and a shard that serves more of one kind is not slow.
    stratum_median = q.groupby(["route", "name"])["query_ms"].transform("median")
    q["relative"] = q["query_ms"] / stratum_median.where(stratum_median > 0, np.nan)
    return q


def shard_table(spans: pd.DataFrame, counts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per shard: queries, share, fair_share, errors, error_rate, query p50/p95 (ms, pool
    wait excluded) and mean pool wait. Counts come from the complete ``counts`` frame
    (SHARD_COLUMNS) when given, else from the sampled spans."""
    q = _queries(spans)
    g = q.groupby("shard_id")
    lat = pd.DataFrame(
        {
            "query_p50_ms": g["query_ms"].median(),
            "query_p95_ms": g["query_ms"].quantile(0.95),
            "wait_mean_ms": g["wait_ms"].mean(),
            "sampled": g.size(),
        }
    )
    if counts is not None and not counts.empty:
        n = counts.groupby("shard_id").agg(queries=("queries", "sum"), errors=("errors", "sum"))
    else:
        n = q.groupby("shard_id").agg(queries=("error", "size"), errors=("error", "sum"))
    table = n.join(lat, how="outer").fillna({"queries": 0, "errors": 0})
    table["queries"] = table["queries"].astype(int)
    table["errors"] = table["errors"].astype(int)
    total = int(table["queries"].sum())
    table["share"] = table["queries"] / total if total else 0.0
    table["fair_share"] = 1.0 / len(table) if len(table) else 0.0
    table["error_rate"] = table["errors"] / table["queries"].where(table["queries"] > 0, np.nan)
    return table.sort_index()


def detect_hot_shards(table: pd.DataFrame) -> list[Finding]:
    if len(table) < 2 or table["queries"].sum() < MIN_SAMPLES * len(table):
        return []
    total, fair = int(table["queries"].sum()), 1.0 / len(table)
    chi_p = float(sps.chisquare(table["queries"].to_numpy()).pvalue)
    pvals = holm([binom_greater(int(n), total, fair) for n in table["queries"]])
    out: list[Finding] = []
    for (shard, row), p in zip(table.iterrows(), pvals, strict=True):
        ratio = float(row["share"]) / fair
        if ratio < 1.15:
            continue
        significant = p < ALPHA and ratio >= HOT_RATIO
        score = min(1.0, (ratio - 1.0) / 2.0)
        out.append(
            Finding(
                kind="hot_shard",
                subject={"app.shard.id": str(shard)},
                summary=(
                    f"Shard {shard} serves {row['share']:.0%} of shard queries, {ratio:.1f}× its "
                    f"fair share of {fair:.0%}: it will saturate first."
                ),
                impact=Impact(ratio, "load_ratio", "share of shard queries / fair share", score),
                confidence=confidence_from_p(p, total),
                severity=severity_for(score, significant=significant),
                evidence=Evidence(
                    aggregate={
                        "shards": _records(table),
                        "chi_square_p": chi_p,
                        "p_holm": p,
                        "ratio": ratio,
                    }
                ),
            )
        )
    return out


def detect_slow_shards(
    spans: pd.DataFrame, slow: Sequence[Profile], table: pd.DataFrame | None = None
) -> list[Finding]:
    q = _queries(spans)
    q = q[~q["error"] & q["relative"].notna()]
    shards = sorted(q["shard_id"].unique())
    if len(shards) < 2:
        return []
    tests = []
    for shard in shards:
        mine, rest = q[q["shard_id"] == shard], q[q["shard_id"] != shard]
        p = mann_whitney_greater(mine["relative"], rest["relative"])
        ratio = float(mine["relative"].median() / rest["relative"].median())
        excess_ms = float(mine["query_ms"].median() - rest["query_ms"].median())
        tests.append((shard, p, ratio, excess_ms, len(mine)))
    adjusted = holm([t[1] for t in tests])
    table = shard_table(spans) if table is None else table
    out: list[Finding] = []
    for (shard, _, ratio, excess_ms, n), p in zip(tests, adjusted, strict=True):
        if ratio < 1.2:
            continue
        impact = tail_impact(slow, _on_shard(str(shard), 1.0 - 1.0 / ratio))
        if impact is None:
            continue
        significant = p < ALPHA and ratio >= SLOW_RATIO and excess_ms >= SLOW_MIN_MS
        out.append(
            Finding(
                kind="slow_shard",
                subject={"app.shard.id": str(shard)},
                summary=(
                    f"Queries on shard {shard} take {ratio:.1f}× as long as the same queries on "
                    f"the other shards (+{excess_ms:.1f} ms median); it costs the slowest "
                    f"{impact.route} requests ≈{impact.ms:.1f} ms."
                ),
                impact=Impact(impact.ms, "ms", impact.on, impact.score),
                confidence=confidence_from_p(p, n),
                severity=severity_for(impact.score, significant=significant),
                evidence=Evidence(
                    trace_ids=impact.trace_ids,
                    aggregate={
                        "shards": _records(table),
                        "ratio": ratio,
                        "p_holm": p,
                        "saving_ms_by_route": impact.by_route,
                    },
                ),
            )
        )
    return out


def detect_failing_shards(table: pd.DataFrame, typical: Sequence[Profile]) -> list[Finding]:
    if len(table) < 2:
        return []
    tests = []
    for shard, row in table.iterrows():
        others = table.drop(index=shard)
        base = (float(others["errors"].sum()) + 0.5) / (float(others["queries"].sum()) + 1.0)
        tests.append(
            (str(shard), binom_greater(int(row["errors"]), int(row["queries"]), base), base)
        )
    adjusted = holm([t[1] for t in tests])
    out: list[Finding] = []
    for (shard, _, base), p in zip(tests, adjusted, strict=True):
        row = cast(pd.Series, table.loc[shard])  # shard ids are unique: one row
        rate = float(row["error_rate"]) if pd.notna(row["error_rate"]) else 0.0
        if int(row["errors"]) == 0:
            continue
        route, share, ids = _failed_requests(typical, shard)
        significant = p < ALPHA and rate >= FAIL_MIN_RATE and rate >= FAIL_RATIO * base
        score = min(1.0, ERROR_WEIGHT * share)
        out.append(
            Finding(
                kind="failing_shard",
                subject={"app.shard.id": shard},
                summary=(
                    f"{rate:.1%} of queries on shard {shard} fail (others {base:.2%}); "
                    f"{share:.1%} of {route or 'all'} requests fail with it."
                ),
                impact=Impact(share, "error_share", f"requests to {route or 'all routes'}", score),
                confidence=confidence_from_p(p, int(row["queries"])),
                severity=severity_for(score, significant=significant),
                evidence=Evidence(
                    trace_ids=ids, aggregate={"shards": _records(table), "p_holm": p}
                ),
            )
        )
    return out


def _on_shard(shard: str, fraction: float) -> Callable[[Span, float], float]:
    """The share of a span's critical time a fix removes, for spans on ``shard``."""

    def excess(span: Span, critical_ms: float) -> float:
        on = span.attributes.get("app.shard.id")
        return critical_ms * fraction if on is not None and str(on) == shard else 0.0

    return excess


def _failed_requests(typical: Sequence[Profile], shard: str) -> tuple[str, float, tuple[str, ...]]:
    """The route where the most requests failed with an error on ``shard``, and that share."""
    per_route: dict[str, list[bool]] = {}
    ids: list[str] = []
    for p in typical:
        hit = p.error and any(
            s.status_code == 2 and str(s.attributes.get("app.shard.id")) == shard for s in p.spans()
        )
        per_route.setdefault(p.route, []).append(hit)
        if hit:
            ids.append(p.trace_id)
    best = max(
        ((r, sum(v) / len(v)) for r, v in per_route.items() if len(v) >= MIN_SAMPLES),
        key=lambda rv: rv[1],
        default=("", 0.0),
    )
    return best[0], best[1], tuple(ids[:5])


def _records(table: pd.DataFrame) -> list[dict[str, object]]:
    frame = table.reset_index().rename(columns={"index": "shard_id"}).round(4)
    return [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]
