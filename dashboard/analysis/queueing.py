"""Queueing vs working: time waiting for a shard connection vs querying, and time the
request spent waiting for the event loop.

* pool_contention: per shard, the share of its queries that waited ≥ ``WAIT_MS`` for a
  connection (binomial tests against a 5 % background and against the other shards,
  Holm-corrected over shards) and
  the share of query-span time spent waiting (alarm at ≥ ``MIN_WAIT_SHARE``).
* event_loop_blocking: a blocked loop delays every request's continuations, so slow
  requests spend their critical path in the server span's own time (no I/O child
  running) — far more than typical requests of the same route (Mann-Whitney) — while
  some code holds the loop: one route whose every request holds it ≥ ``CPU_MIN_MS`` at a
  stretch, 3× any other (the culprit, a CPU-bound handler), or every route doing so —
  every request since some point in the window, as long as that covers at least the
  latest third of them (a window usually reaches back before the trouble began).
  Or the handlers' own time × their traffic keeps the loop busy ≥ ``LOOP_BUSY`` of the
  time. Waits with no code holding the loop are the process not getting a CPU.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from statistics import median

import numpy as np
import pandas as pd

from dashboard.analysis.findings import Evidence, Finding, Impact, severity_for
from dashboard.analysis.profiles import Profile, service_of, tail_impact
from dashboard.analysis.shards import on_shard, shard_name, shard_subject
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
    "detect_event_loop_blocking",
    "detect_pool_contention",
    "longest_own_ms",
    "loop_time_ms",
    "pool_table",
]

WAIT_MS = 0.5
MIN_WAIT_SHARE = 0.05
#: Own time of the slow requests above typical, as a share of their duration, for a route
#: to count as blocked; and how many routes must be.
LOOP_MIN_SHARE = 0.25
LOOP_MIN_ROUTES = 2  # routes whose own time is measured, for "every route burns"
#: Share of time the loop spends in handlers' own code that is blocking by itself.
LOOP_BUSY = 0.3
#: Typical own time of a server span that makes its route a CPU-bound suspect.
CPU_MIN_MS = 2.0
#: Block every route must hold the loop for, in 90 % of its requests, for "every route
#: burns": a host short of CPU stretches the blocks of *some* routes to a few ms (most of
#: all the ones with many steps), a handler burning CPU on every route stretches them all.
ALL_ROUTES_MIN_MS = 3.0
#: Sampled requests a route needs to count in "every route burns".
ALL_ROUTES_MIN_SAMPLES = 20
CPU_QUANTILE = 0.1
#: The latest share of a route's requests its block floor may rest on (CPU burnt since some
#: time within the window; see ``_own_time_floors``).
ONSET_MIN_SHARE = 1 / 3


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
    spans: pd.DataFrame,
    slow: Sequence[Profile],
    shards: pd.DataFrame | None = None,
    service: str | None = None,
) -> list[Finding]:
    """``shards`` (SHARD_COLUMNS, complete metrics) makes the wait share exact and adds a
    per-bucket test; waits are bursty, so a sample of traces alone can miss them.
    ``service``: the owner of these shards, named in the subject (see ``shards``)."""
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

        impact = tail_impact(slow, _waiting_on(str(shard), service))
        if impact is None:
            continue
        significant = p < ALPHA and share >= MIN_WAIT_SHARE
        out.append(
            Finding(
                kind="pool_contention",
                subject=shard_subject(shard, service),
                summary=(
                    f"Queries on {shard_name(shard, service)} spend {share:.0%} of their "
                    f"time waiting for a pool connection (mean {row['wait_mean_ms']:.1f} ms, "
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
    """shard → waiting / query-span time over every query (from the metrics frame), over
    the buckets whose wait is known: a pool-wait histogram scraped every few seconds has
    no value in most one-second buckets, and counting those as "no wait" would hide it."""
    if shards is None or shards.empty or shards["pool_wait_mean_ms"].isna().all():
        return {}
    known = shards[shards["pool_wait_mean_ms"].notna()]
    f = known.assign(
        wait=known["pool_wait_mean_ms"] * known["queries"],
        busy=known["mean_ms"] * known["queries"],
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


def _waiting_on(shard: str, service: str | None = None) -> Callable[[Span, float], float]:
    """The part of a query span's critical time spent waiting, for spans on ``shard``."""

    def excess(span: Span, critical_ms: float) -> float:
        if not on_shard(span, shard, service):
            return 0.0
        wait = span.attributes.get("app.pool.wait_ms")
        dur = (span.end_ns - span.start_ns) / 1e6
        if not isinstance(wait, int | float) or dur <= 0:
            return 0.0
        return critical_ms * min(1.0, float(wait) / dur)

    return excess


def loop_time_ms(p: Profile) -> float:
    """Critical-path time in the entry server span's own code: CPU on the loop, or a
    continuation waiting for a busy loop. A caller's span above it is left out on
    purpose: a load generator that starts its spans at the intended send time (to avoid
    coordinated omission) would put its own lag there."""
    return p.critical_ms.get(p.entry.span_id, 0.0) if p.entry is not None else 0.0


def loop_busy_share(
    typical: Sequence[Profile], red: pd.DataFrame | None
) -> tuple[float, dict[str, float]]:
    """How much of the time the loop runs handlers' own code: Σ over routes of its rate
    (RED) × the floor of its server span's own time (the ``CPU_QUANTILE`` — the CPU every
    request spends, not the waits a busy loop adds — since the onset, as in
    ``_own_time_floors``: a burn that began partway through the window counts at its
    level, not diluted by the requests before it). 1.0 means the loop never rests."""
    if red is None or red.empty:
        return 0.0, {}
    stamps = red["ts"].sort_values().unique()
    step = (stamps[1] - stamps[0]) / np.timedelta64(1, "s") if len(stamps) > 1 else 60.0
    window_s = (stamps[-1] - stamps[0]) / np.timedelta64(1, "s") + step
    rates = red.groupby("route")["requests"].sum() / window_s
    own: dict[str, list[tuple[int, float]]] = {}
    for p in typical:
        if p.entry is not None:
            own.setdefault(p.route, []).append(
                (p.entry.start_ns, p.self_ms.get(p.entry.span_id, 0.0))
            )
    share = {
        r: float(rates[r]) * _onset_floor([v for _, v in sorted(rows)]) / 1000.0
        for r, rows in own.items()
        if r in rates.index and len(rows) >= MIN_SAMPLES
    }
    return sum(share.values()), share


def _blocked_routes(
    typical: Sequence[Profile], slow: Sequence[Profile]
) -> dict[str, tuple[float, float, float]]:
    """route → (mean extra own time of its slow requests over typical ones (ms), that as a
    share of their duration, Mann-Whitney p)."""
    out: dict[str, tuple[float, float, float]] = {}
    for route in sorted({p.route for p in slow if p.route}):
        s = [loop_time_ms(p) for p in slow if p.route == route]
        t = [loop_time_ms(p) for p in typical if p.route == route]
        if len(s) < MIN_SAMPLES or len(t) < MIN_SAMPLES:
            continue
        ref = median(t)
        excess = float(np.mean([max(0.0, x - ref) for x in s]))
        duration = float(np.mean([p.duration_ms for p in slow if p.route == route]))
        out[route] = (
            excess,
            excess / duration if duration > 0 else 0.0,
            mann_whitney_greater(s, t),
        )
    return out


def detect_event_loop_blocking(
    typical: Sequence[Profile], slow: Sequence[Profile], red: pd.DataFrame | None = None
) -> list[Finding]:
    """Two signatures, either raises the alarm: the slow requests of several routes wait
    in their own code (a blocked loop delays everyone), or the handlers' own CPU time ×
    traffic keeps the loop busy ≥ ``LOOP_BUSY`` of the time (it will queue)."""
    blocked = _blocked_routes(typical, slow)
    busy, busy_by_route = loop_busy_share(typical, red)
    if not blocked and busy < LOOP_BUSY:
        return []
    adjusted = dict(zip(blocked, holm([v[2] for v in blocked.values()]), strict=True))
    hit = [r for r, (_, sh, _) in blocked.items() if sh >= LOOP_MIN_SHARE and adjusted[r] < ALPHA]
    worst = max(blocked, key=lambda r: blocked[r][1]) if blocked else ""
    excess_ms, score_share, _ = blocked.get(worst, (0.0, 0.0, 1.0))
    if score_share < 0.05 and busy < LOOP_BUSY:
        return []
    floors = _own_time_floors(typical)
    culprit, own_ms = _cpu_bound_route(floors)
    subject = {"service.name": service_of(typical) or _most_entered(typical)}
    if culprit:
        method, _, template = culprit.partition(" ")
        subject.update({"http.request.method": method, "http.route": template})
    # Waiting in the loop is blocking only if some code keeps the loop busy: one CPU-bound
    # route, or every route's own CPU. Without either, the waits are the process not
    # getting a CPU (a busy host, a noisy neighbour), which no change to the code fixes.
    # "Every route" counts the routes measured well enough: a route with a handful of
    # sampled requests (checkout, a tenth of the traffic) has a floor that is one or two
    # requests from before the burn began, not evidence that it does not burn.
    measured = [
        floors[r]
        for r, n in _sampled_by_route(typical).items()
        if r in floors and n >= ALL_ROUTES_MIN_SAMPLES
    ]
    burning = bool(culprit) or (
        len(measured) >= LOOP_MIN_ROUTES and min(measured) >= ALL_ROUTES_MIN_MS
    )
    # With the loop's CPU established, one route whose slow requests wait in it shows the
    # harm (a short window has too few slow requests of the quieter routes to test them).
    spread = len(hit) >= 1 and burning
    score = max(min(1.0, score_share), min(1.0, busy) if busy >= LOOP_BUSY else 0.0)
    n_worst = sum(1 for p in slow if p.route == worst)
    ids = tuple(
        p.trace_id
        for p in sorted((p for p in slow if p.route == worst), key=lambda p: -loop_time_ms(p))
    )
    by = (
        f", most likely by {culprit} (it holds the loop ≥ {own_ms:.1f} ms at a stretch in 90 % "
        "of its requests, at least of its latest)"
        if culprit
        else ""
    )
    return [
        Finding(
            kind="event_loop_blocking",
            subject=subject,
            summary=(
                f"The event loop is blocked{by}: it is busy in handler code "
                f"{busy:.0%} of the time, and the slow requests of {len(hit)} of "
                f"{len(blocked)} routes wait in the server's own time"
                + (f" (+{excess_ms:.1f} ms on {worst})." if worst else ".")
            ),
            impact=Impact(
                excess_ms,
                "ms",
                f"mean of the slowest {n_worst} {worst}" if worst else "all requests",
                score,
            ),
            confidence=confidence_from_p(min(adjusted.values(), default=1.0), len(typical)),
            severity=severity_for(score, significant=spread or busy >= LOOP_BUSY),
            evidence=Evidence(
                trace_ids=ids[:5],
                aggregate={
                    "routes": {
                        r: {"excess_ms": v[0], "share": v[1], "p_holm": adjusted[r]}
                        for r, v in blocked.items()
                    },
                    "loop_busy_share": busy,
                    "loop_busy_by_route": busy_by_route,
                    "culprit": culprit,
                    "culprit_own_ms": own_ms,
                    "block_ms_floor_by_route": floors,
                },
                notes=()
                if burning or not hit
                else (
                    f"No route holds the loop for ≥ {CPU_MIN_MS:g} ms at a stretch in 90 % of "
                    "its requests: the slow requests' waits look like the process not getting "
                    "a CPU (a busy host), not like code blocking the loop.",
                ),
            ),
        )
    ]


def _most_entered(typical: Sequence[Profile]) -> str:
    """The service most requests entered (the loop whose own time is measured); partial
    traces at a window's edges can make a few look as if they entered elsewhere."""
    entered = Counter(p.entry.service for p in typical if p.entry is not None)
    return entered.most_common(1)[0][0] if entered else ""


def longest_own_ms(p: Profile) -> float:
    """The longest stretch of the entry server span with no child running: code that ran
    without yielding (CPU on the loop), or one wait for the loop. A handler burning CPU
    shows it as one block on every request; a handler with many steps spreads its own
    time over many short gaps, and a busy host adds a gap here and there."""
    entry = p.entry
    if entry is None:
        return 0.0
    kids = sorted(
        (max(k.start_ns, entry.start_ns), min(k.end_ns, entry.end_ns))
        for k in p.tree.children.get(entry.span_id, [])
    )
    longest, cursor = 0, entry.start_ns
    for start, end in kids:
        if start > cursor:
            longest = max(longest, start - cursor)
        cursor = max(cursor, end)
    longest = max(longest, entry.end_ns - cursor)
    return longest / 1e6


def _sampled_by_route(typical: Sequence[Profile]) -> Counter[str]:
    return Counter(p.route for p in typical if p.entry is not None)


def _own_time_floors(typical: Sequence[Profile]) -> dict[str, float]:
    """route → the ``CPU_QUANTILE`` of its longest own-time stretch in typical requests:
    the block of CPU every request of the route holds the loop for (victims of a blocked
    loop wait only when they meet a block, so the low quantile leaves their waits out).

    Since some time: a handler that began burning CPU partway through the window (a
    deploy, a switch) blocks on every request *after* that, and a window reaching back
    before it — as an on-call engineer's usually does — would put the low quantile among
    the earlier, healthy requests. So the floor is the highest over the route's latest
    requests, from any point that leaves at least ``ONSET_MIN_SHARE`` of them (and
    ``MIN_SAMPLES``). A busy host stretches a block here and there, not nine in ten of a
    third of the window."""
    own: dict[str, list[tuple[int, float]]] = {}
    for p in typical:
        if p.entry is not None:
            own.setdefault(p.route, []).append((p.entry.start_ns, longest_own_ms(p)))
    return {
        route: _onset_floor([b for _, b in sorted(rows)])
        for route, rows in own.items()
        if len(rows) >= MIN_SAMPLES
    }


def _onset_floor(values: Sequence[float]) -> float:
    """The highest ``CPU_QUANTILE`` of ``values`` (in time order, at least ``MIN_SAMPLES``)
    over their latest part, from any point that leaves at least ``ONSET_MIN_SHARE``."""
    blocks = np.asarray(values, dtype=float)
    shortest = max(MIN_SAMPLES, math.ceil(len(blocks) * ONSET_MIN_SHARE))
    step = max(1, len(blocks) // 60)  # ~60 onsets tried: enough, and linear in practice
    return max(
        float(np.quantile(blocks[i:], CPU_QUANTILE))
        for i in range(0, len(blocks) - shortest + 1, step)
    )


def _cpu_bound_route(floors: dict[str, float]) -> tuple[str, float]:
    """The route whose server span holds the loop on *every* request (a block of CPU, no
    I/O child), when it stands out: block floor ≥ ``CPU_MIN_MS`` and ≥ 3× any other
    route's."""
    ranked = sorted(((f, r) for r, f in floors.items()), reverse=True)
    if not ranked:
        return "", 0.0
    top, route = ranked[0]
    second = ranked[1][0] if len(ranked) > 1 else 0.0
    return (route, top) if top >= CPU_MIN_MS and top >= 3 * second else ("", top)
