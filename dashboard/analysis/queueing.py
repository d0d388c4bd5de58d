"""Queueing vs working: time waiting for a shard connection vs querying, and time the
request spent waiting for the event loop.

* pool_contention: per shard, the share of its queries that waited ≥ ``WAIT_MS`` for a
  connection (binomial tests against a 5 % background and against the other shards,
  Holm-corrected over shards) and
  the share of query-span time spent waiting (alarm at ≥ ``MIN_WAIT_SHARE``).
* event_loop_blocking: a blocked loop delays every request's continuations, so the
  slow requests of *several* routes spend their critical path in the server span's own
  time (no I/O child running) — far more than typical requests of the same route
  (Mann-Whitney). The route that keeps the loop busiest (own time × traffic) is named as
  the likely culprit: a CPU-bound handler without I/O children.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from statistics import median

import numpy as np
import pandas as pd

from dashboard.analysis.findings import Evidence, Finding, Impact, severity_for
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

__all__ = ["detect_event_loop_blocking", "detect_pool_contention", "loop_time_ms", "pool_table"]

WAIT_MS = 0.5
MIN_WAIT_SHARE = 0.05
#: Own time of the slow requests above typical, as a share of their duration, for a route
#: to count as blocked; and how many routes must be.
LOOP_MIN_SHARE = 0.25
LOOP_MIN_ROUTES = 2
#: Typical own time of a server span that makes its route a CPU-bound suspect.
CPU_MIN_MS = 2.0
CPU_QUANTILE = 0.1


def pool_table(spans: pd.DataFrame) -> pd.DataFrame:
    """Per shard: queries, waited (≥ WAIT_MS), wait_mean_ms, wait_p95_ms, query_mean_ms,
    wait_share (waiting / query span time)."""
    q = spans[spans["shard_id"].notna() & spans["pool_wait_ms"].notna()].copy()
    if q.empty:
        return pd.DataFrame()
    q["wait"] = q["pool_wait_ms"].clip(lower=0.0)
    g = q.groupby("shard_id")
    table = pd.DataFrame(
        {
            "queries": g.size(),
            "waited": g["wait"].apply(lambda w: int((w >= WAIT_MS).sum())),
            "wait_mean_ms": g["wait"].mean(),
            "wait_p95_ms": g["wait"].quantile(0.95),
            "query_mean_ms": g["duration_ms"].mean() - g["wait"].mean(),
            "wait_share": g["wait"].sum()
            / g["duration_ms"].sum().where(g["duration_ms"].sum() > 0),
        }
    )
    return table.sort_index()


def detect_pool_contention(
    spans: pd.DataFrame, slow: Sequence[Profile], shards: pd.DataFrame | None = None
) -> list[Finding]:
    """``shards`` (SHARD_COLUMNS, complete metrics) makes the wait share exact and adds a
    per-bucket test; waits are bursty, so a sample of traces alone can miss them."""
    table = pool_table(spans)
    if table.empty:
        return []
    complete = _complete_wait_share(shards)
    pvals = holm(
        [
            min(1.0, 2.0 * min(_waited_more(table, str(s)), _bucket_waits_higher(shards, str(s))))
            for s in table.index
        ]
    )
    out: list[Finding] = []
    for (shard, row), p in zip(table.iterrows(), pvals, strict=True):
        share = complete.get(
            str(shard), float(row["wait_share"]) if pd.notna(row["wait_share"]) else 0.0
        )
        if row["waited"] == 0 and share < 0.02:
            continue

        impact = tail_impact(slow, _waiting_on(str(shard)))
        if impact is None:
            continue
        significant = p < ALPHA and share >= MIN_WAIT_SHARE
        out.append(
            Finding(
                kind="pool_contention",
                subject={"app.shard.id": str(shard)},
                summary=(
                    f"Queries on shard {shard} spend {share:.0%} of their time waiting for a pool "
                    f"connection (mean {row['wait_mean_ms']:.1f} ms, "
                    f"p95 {row['wait_p95_ms']:.1f} ms "
                    f"vs {row['query_mean_ms']:.1f} ms of work); it costs the slowest "
                    f"{impact.route} ≈{impact.ms:.1f} ms."
                ),
                impact=Impact(impact.ms, "ms", impact.on, impact.score),
                confidence=confidence_from_p(p, int(row["queries"])),
                severity=severity_for(impact.score, significant=significant),
                evidence=Evidence(
                    trace_ids=impact.trace_ids,
                    aggregate={
                        "pool": table.reset_index().round(4).to_dict("records"),
                        "p_holm": p,
                        # Query spans are this many times longer than their work alone.
                        "ratio": 1.0 / max(1e-9, 1.0 - share),
                    },
                ),
            )
        )
    return out


def _complete_wait_share(shards: pd.DataFrame | None) -> dict[str, float]:
    """shard → waiting / query-span time over every query (from the metrics frame)."""
    if shards is None or shards.empty or shards["pool_wait_mean_ms"].isna().all():
        return {}
    f = shards.assign(
        wait=shards["pool_wait_mean_ms"].fillna(0.0) * shards["queries"],
        busy=shards["mean_ms"] * shards["queries"],
    )
    g = f.groupby("shard_id")[["wait", "busy"]].sum()
    return {str(k): float(r["wait"] / r["busy"]) for k, r in g.iterrows() if r["busy"] > 0}


def _bucket_waits_higher(shards: pd.DataFrame | None, shard: str) -> float:
    """p-value that the shard's mean pool wait per time bucket exceeds the other shards'."""
    if shards is None or shards.empty:
        return 1.0
    mine = shards["shard_id"].astype(str) == shard
    return mann_whitney_greater(
        shards.loc[mine, "pool_wait_mean_ms"], shards.loc[~mine, "pool_wait_mean_ms"]
    )


def _waited_more(table: pd.DataFrame, shard: str) -> float:
    """p-value that this shard's queries wait more often than a 5 % background *or* than
    the other shards' (one undersized pool stands out against its peers; every pool
    undersized stands out against the background). Bonferroni over the two."""
    mine = table.index == shard
    row, others = table[mine].iloc[0], table[~mine]
    k, n = int(row["waited"]), int(row["queries"])
    peers = (float(others["waited"].sum()) + 0.5) / (float(others["queries"].sum()) + 1.0)
    p = min(binom_greater(k, n, 0.05), binom_greater(k, n, max(0.01, peers)))
    return min(1.0, 2.0 * p)


def _waiting_on(shard: str) -> Callable[[Span, float], float]:
    """The part of a query span's critical time spent waiting, for spans on ``shard``."""

    def excess(span: Span, critical_ms: float) -> float:
        if str(span.attributes.get("app.shard.id")) != shard:
            return 0.0
        wait = span.attributes.get("app.pool.wait_ms")
        dur = (span.end_ns - span.start_ns) / 1e6
        if not isinstance(wait, int | float) or dur <= 0:
            return 0.0
        return critical_ms * min(1.0, float(wait) / dur)

    return excess


def loop_time_ms(p: Profile) -> float:
    """Critical-path time in the entry server span's own code, plus a caller's root span
    above it (time before the server started: waiting to be accepted)."""
    total = p.critical_ms.get(p.entry.span_id, 0.0) if p.entry is not None else 0.0
    root = p.tree.root
    if p.entry is not None and root.span_id != p.entry.span_id and root.service != p.entry.service:
        total += p.critical_ms.get(root.span_id, 0.0)
    return total


def detect_event_loop_blocking(
    typical: Sequence[Profile], slow: Sequence[Profile]
) -> list[Finding]:
    routes = sorted({p.route for p in slow if p.route})
    blocked: dict[str, tuple[float, float, float]] = {}  # route → (excess ms, share, p)
    tested = 0
    for route in routes:
        s = [p for p in slow if p.route == route]
        t = [p for p in typical if p.route == route]
        if len(s) < MIN_SAMPLES or len(t) < MIN_SAMPLES:
            continue
        tested += 1
        s_loop, t_loop = [loop_time_ms(p) for p in s], [loop_time_ms(p) for p in t]
        ref = median(t_loop)
        excess = float(np.mean([max(0.0, x - ref) for x in s_loop]))
        share = excess / float(np.mean([p.duration_ms for p in s]))
        pv = mann_whitney_greater(s_loop, t_loop)
        blocked[route] = (excess, share, pv)
    if not blocked:
        return []
    adjusted = dict(zip(blocked, holm([v[2] for v in blocked.values()]), strict=True))
    hit = [
        r for r, (_, share, _) in blocked.items() if share >= LOOP_MIN_SHARE and adjusted[r] < ALPHA
    ]
    worst = max(blocked, key=lambda r: blocked[r][1])
    excess_ms, score_share, _ = blocked[worst]
    if score_share < 0.05:
        return []
    culprit, own_ms = _cpu_bound_route(typical)
    svc = next((p.entry.service for p in slow if p.entry is not None), "")
    subject = {"service.name": svc}
    if culprit:
        method, _, template = culprit.partition(" ")
        subject.update({"http.request.method": method, "http.route": template})
    n_worst = sum(1 for p in slow if p.route == worst)
    significant = len(hit) >= min(LOOP_MIN_ROUTES, max(tested, 1)) and tested >= LOOP_MIN_ROUTES
    score = min(1.0, score_share)
    ids = tuple(
        p.trace_id
        for p in sorted((p for p in slow if p.route == worst), key=lambda p: -loop_time_ms(p))
    )
    return [
        Finding(
            kind="event_loop_blocking",
            subject=subject,
            summary=(
                f"The slow requests of {len(hit)} of {tested} routes spend their time in the "
                f"server's own code with no I/O running (+{excess_ms:.1f} ms on {worst}): the "
                f"event loop is blocked"
                + (
                    f", most likely by {culprit} (≥ {own_ms:.1f} ms of its own time in 90 % "
                    "of its requests)."
                    if culprit
                    else "."
                )
            ),
            impact=Impact(excess_ms, "ms", f"mean of the slowest {n_worst} {worst}", score),
            confidence=confidence_from_p(min(adjusted.values()), sum(1 for _ in typical)),
            severity=severity_for(score, significant=significant),
            evidence=Evidence(
                trace_ids=ids[:5],
                aggregate={
                    "routes": {
                        r: {"excess_ms": v[0], "share": v[1], "p_holm": adjusted[r]}
                        for r, v in blocked.items()
                    },
                    "culprit": culprit,
                    "culprit_own_ms": own_ms,
                },
            ),
        )
    ]


def _cpu_bound_route(typical: Sequence[Profile]) -> tuple[str, float]:
    """The route whose server span spends time in its own code on *every* request (CPU on
    the loop, no I/O child), when it stands out. Victims of a blocked loop are slow only
    when they meet a block, so the low quantile (``CPU_QUANTILE``) of own time tells the
    culprit apart: ≥ ``CPU_MIN_MS`` and ≥ 3× any other route's."""
    own: dict[str, list[float]] = {}
    for p in typical:
        if p.entry is not None:
            own.setdefault(p.route, []).append(p.self_ms.get(p.entry.span_id, 0.0))
    floors = sorted(
        ((float(np.quantile(v, CPU_QUANTILE)), r) for r, v in own.items() if len(v) >= MIN_SAMPLES),
        reverse=True,
    )
    if not floors:
        return "", 0.0
    top, route = floors[0]
    second = floors[1][0] if len(floors) > 1 else 0.0
    return (route, top) if top >= CPU_MIN_MS and top >= 3 * second else ("", top)
