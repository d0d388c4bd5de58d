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

Shards belong to a service: in the micro topology the catalog's shard 1 and the orders
service's shard 1 are different databases. Each detector takes the ``service`` that owns
the shards it looks at (``diagnose`` runs them once per owner when several services have
shards in the window) and then names it in the subject —
``{"service.name": "narrows-catalog", "app.shard.id": "1"}``; with one owner the subject
stays ``{"app.shard.id": "1"}``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import numpy as np
import pandas as pd
from scipy import stats as sps

from dashboard.analysis.findings import ERROR_WEIGHT, Evidence, Finding, Impact, severity_for
from dashboard.analysis.inputs import SERVER, SPAN_COLUMNS, is_error
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

__all__ = [
    "cluster_factor",
    "detect_failing_shards",
    "detect_hot_shards",
    "detect_slow_shards",
    "on_shard",
    "shard_name",
    "shard_owners",
    "shard_subject",
    "shard_table",
]

HOT_RATIO = 1.5
SLOW_RATIO = 1.5
SLOW_MIN_MS = 1.0
FAIL_MIN_RATE = 0.01
FAIL_RATIO = 3.0


def shard_owners(spans: pd.DataFrame) -> list[str]:
    """The services whose spans carry ``app.shard.id`` (each owns its own shards)."""
    if spans.empty or "shard_id" not in spans.columns:
        return []
    return sorted(str(s) for s in spans.loc[spans["shard_id"].notna(), "service"].unique())


def shard_subject(shard: object, service: str | None = None) -> dict[str, str]:
    """``{"app.shard.id": …}``, with ``service.name`` when the owner must be named."""
    subject = {"app.shard.id": str(shard)}
    return {"service.name": service, **subject} if service else subject


def shard_name(shard: object, service: str | None = None) -> str:
    """``shard 2``, or ``shard 2 of narrows-catalog`` when the owner must be named."""
    return f"shard {shard} of {service}" if service else f"shard {shard}"


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


def cluster_factor(spans: pd.DataFrame) -> float:
    """How many times a shard-query count overstates its independent observations: queries
    come in bursts per request (a PUT's BEGIN, UPDATE, COMMIT all land on one shard), so
    the count varies more than a binomial's. Kish's design effect for clusters of sizes
    m: Σm² / Σm over the (trace, shard) clusters of the sampled spans (1 when each
    request makes one query per shard)."""
    if spans.empty or "shard_id" not in spans.columns:
        return 1.0
    q = spans[spans["shard_id"].notna()]
    sizes = q.groupby(["trace_id", "shard_id"]).size().to_numpy(dtype=float)
    return float(max(1.0, (sizes**2).sum() / sizes.sum())) if len(sizes) else 1.0


def detect_hot_shards(
    table: pd.DataFrame, service: str | None = None, clustering: float = 1.0
) -> list[Finding]:
    """``clustering``: ``cluster_factor`` of the shard queries; the tests count queries
    divided by it (their effective number), the shares stay as counted."""
    if len(table) < 2 or table["queries"].sum() < MIN_SAMPLES * len(table):
        return []
    total, fair = int(table["queries"].sum()), 1.0 / len(table)
    effective = (table["queries"] / max(1.0, clustering)).round().astype(int)
    chi_p = float(sps.chisquare(effective.to_numpy() + 1e-9).pvalue)
    n_eff = int(effective.sum())
    pvals = holm([binom_greater(int(n), n_eff, fair) for n in effective])
    out: list[Finding] = []
    for (shard, row), p in zip(table.iterrows(), pvals, strict=True):
        ratio = float(row["share"]) / fair
        if ratio < 1.15:
            continue
        significant = p < ALPHA and ratio >= HOT_RATIO
        score = min(1.0, (ratio - 1.0) / 2.0)
        name = shard_name(shard, service)
        out.append(
            Finding(
                kind="hot_shard",
                subject=shard_subject(shard, service),
                summary=(
                    f"{name[:1].upper()}{name[1:]} serves {row['share']:.0%} of shard "
                    f"queries, {ratio:.1f}× its "
                    f"fair share of {fair:.0%}: it will saturate first."
                ),
                impact=Impact(ratio, "load_ratio", "share of shard queries / fair share", score),
                confidence=confidence_from_p(p, total),
                severity=severity_for(score, significant=significant),
                evidence=Evidence(
                    aggregate={
                        "shards": _records(table),
                        "chi_square_p": chi_p,
                        "queries_per_request_cluster": clustering,
                        "p_holm": p,
                        "ratio": ratio,
                    }
                ),
            )
        )
    return out


def detect_slow_shards(
    spans: pd.DataFrame,
    slow: Sequence[Profile],
    table: pd.DataFrame | None = None,
    service: str | None = None,
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
        impact = tail_impact(slow, _on_shard(str(shard), 1.0 - 1.0 / ratio, service))
        if impact is None:
            continue
        significant = p < ALPHA and ratio >= SLOW_RATIO and excess_ms >= SLOW_MIN_MS
        out.append(
            Finding(
                kind="slow_shard",
                subject=shard_subject(shard, service),
                summary=(
                    f"Queries on {shard_name(shard, service)} take {ratio:.1f}× as long as "
                    f"the same queries on the other shards (+{excess_ms:.1f} ms median); "
                    f"it costs the slowest {impact.route} requests ≈{impact.ms:.1f} ms."
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


def detect_failing_shards(
    table: pd.DataFrame, typical: Sequence[Profile], service: str | None = None
) -> list[Finding]:
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
        route, share, ids = _failed_requests(typical, shard, service)
        significant = p < ALPHA and rate >= FAIL_MIN_RATE and rate >= FAIL_RATIO * base
        score = min(1.0, ERROR_WEIGHT * share)
        # The share of failed requests comes from the trace sample, which can hold few of
        # them (a 5 % shard failure sampled in a short window); the query counts are
        # complete. A shard failing significantly more than its peers fails requests
        # unless something retries them: an alarm however thin the sample.
        severity = severity_for(score, significant=significant)
        if significant and severity == "info":
            severity = "notable"
        out.append(
            Finding(
                kind="failing_shard",
                subject=shard_subject(shard, service),
                summary=(
                    f"{rate:.1%} of queries on {shard_name(shard, service)} fail (others "
                    f"{base:.2%}); {share:.1%} of {route or 'all'} requests fail with it"
                    + (f" in {service} (whether retried or not)." if service else ".")
                ),
                impact=Impact(share, "error_share", f"requests to {route or 'all routes'}", score),
                confidence=confidence_from_p(p, int(row["queries"])),
                severity=severity,
                evidence=Evidence(
                    trace_ids=ids, aggregate={"shards": _records(table), "p_holm": p}
                ),
            )
        )
    return out


def on_shard(span: Span, shard: str, service: str | None = None) -> bool:
    """The span is a query on ``shard`` (of ``service``, when given)."""
    on = span.attributes.get("app.shard.id")
    return on is not None and str(on) == shard and (service is None or span.service == service)


def _on_shard(
    shard: str, fraction: float, service: str | None = None
) -> Callable[[Span, float], float]:
    """The share of a span's critical time a fix removes, for spans on ``shard``."""

    def excess(span: Span, critical_ms: float) -> float:
        return critical_ms * fraction if on_shard(span, shard, service) else 0.0

    return excess


def _failed_requests(
    typical: Sequence[Profile], shard: str, service: str | None = None
) -> tuple[str, float, tuple[str, ...]]:
    """The route where the most requests failed with an error on ``shard``, and that share.

    With ``service`` (the shard's owner, behind other services): a request counts when a
    request *into the owner* failed with it — even if its caller retried and the user saw
    a success, the owner failed that request, and the retry cost time and load."""
    per_route: dict[str, list[bool]] = {}
    ids: list[str] = []
    for p in typical:
        spans = list(p.spans())
        failed_query = any(s.status_code == 2 and on_shard(s, shard, service) for s in spans)
        owner_failed = p.error or (
            service is not None
            and any(s.kind == SERVER and s.service == service and is_error(s) for s in spans)
        )
        hit = failed_query and owner_failed
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
