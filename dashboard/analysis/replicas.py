"""Replicas and the calls between services: a slow replica, a dead one, a retry storm.

All three read the calls of the sampled traces (``servicemap.calls_frame``: one row per
client/server pair, retry attempt, or call nobody answered):

* **slow_replica** — each call's duration *as its caller saw it* (so a slow network path
  to one replica counts too), relative to the median of the same operation on every replica
  of the service; Mann-Whitney of one replica against the others, Holm over all replicas of
  all services → ≥ 1.5× and ≥ 1 ms slower on average (means: a replica slow only on its
  database calls leaves its cache hits fast, and its median may not move). Replicas, not
  shards: every replica reads every shard, so a slow replica slows all shards' queries it
  makes alike and no shard stands out, while a slow shard slows every replica alike and no
  replica stands out.
* **replica_down** — a replica stopped answering: its longest run of consecutive
  *unanswered* calls (no server span: connection refused or timed out) against the chance
  of that run at the other replicas' unanswered rate; a caller's ``upstream ejected`` event
  for it (``ejections``); or it went silent: no call to it after time T while its peers —
  balanced alongside it until then — took n more, probability (1 − its share)ⁿ. A process
  replaced by a new one (a restart gets a new ``service.instance.id``) was never balanced
  alongside its successor and is not reported.
* **retry_storm** — resend attempts (``http.request.resend_count`` ≥ 1) per first attempt
  on a caller → callee edge, binomial test against a 1 % background, Holm over edges →
  ≥ 2 × a retry budget of 10 % (the client-side budget the Google SRE book recommends;
  Finagle's default is 20 %), or ≥ half the budget resent back-to-back (median gap before a
  resend < 2 ms: no backoff). Evidence: the deepest chain of attempts, the gap, and the
  rate early vs late in the window.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from dashboard.analysis.findings import ERROR_WEIGHT, Evidence, Finding, Impact, severity_for
from dashboard.analysis.inputs import CLIENT, EJECTION_COLUMNS
from dashboard.analysis.profiles import Profile, tail_impact
from dashboard.analysis.servicemap import EXTERNAL
from dashboard.analysis.stats import (
    ALPHA,
    MIN_SAMPLES,
    binom_greater,
    confidence_from_p,
    holm,
    mann_whitney_greater,
    typical_mean,
)
from dashboard.sources.model import LogRecord, Span, Trace

__all__ = [
    "RETRY_BUDGET",
    "detect_replica_down",
    "detect_retry_storm",
    "detect_slow_replicas",
    "ejections_frame",
    "upstream_of",
]

SLOW_RATIO = 1.5
SLOW_MIN_MS = 1.0
#: Consecutive refused calls that make a run worth testing.
DOWN_MIN_RUN = 3
#: Resends per first attempt a healthy client stays within (its retry budget), and the
#: background rate of a client that retries only what is worth retrying.
RETRY_BUDGET = 0.1
BACKGROUND = 0.01
#: A storm: resends ≥ 2 × the budget; or ≥ half of it sent back-to-back (median gap before a
#: resend < NO_BACKOFF_MS: nothing stops a retry from landing on an overloaded callee).
STORM_FACTOR = 2.0
NO_BACKOFF_MS = 2.0
#: Score per resend per call: 5 % back-to-back resends are notable, 17 % critical.
STORM_WEIGHT = 3.0

_EVENTS = {"upstream ejected": "ejected", "upstream readmitted": "readmitted"}


def ejections_frame(logs: Sequence[LogRecord]) -> pd.DataFrame:
    """EJECTION_COLUMNS from log records; lines that are not balancer events are ignored."""
    rows = [
        {
            "ts": pd.Timestamp(r.time_ns, unit="ns", tz="UTC"),
            "service": r.service,
            "upstream": str(r.attributes.get("upstream.service", "")),
            "instance": str(r.attributes.get("upstream.instance", "")),
            "event": _EVENTS[r.body.strip()],
            "reason": str(r.attributes.get("reason", "")),
        }
        for r in logs
        if r.body.strip() in _EVENTS and r.attributes.get("upstream.instance") is not None
    ]
    frame = pd.DataFrame(rows, columns=list(EJECTION_COLUMNS))
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


def _service_calls(calls: pd.DataFrame) -> pd.DataFrame:
    c = calls[(calls["target_kind"] == "service") & (calls["callee_instance"] != "")]
    return c.sort_values("start_ns", kind="stable")


def upstream_of(calls: pd.DataFrame, service: str) -> list[str]:
    """``service`` and every service that calls it, directly or through others."""
    edges = calls[calls["target_kind"] == "service"][["caller", "callee"]].drop_duplicates()
    callers: dict[str, set[str]] = {}
    for caller, callee in edges.itertuples(index=False):
        if caller != callee and caller != EXTERNAL:
            callers.setdefault(str(callee), set()).add(str(caller))
    seen, todo = {service}, [service]
    while todo:
        for c in callers.get(todo.pop(), ()):
            if c not in seen:
                seen.add(c)
                todo.append(c)
    return sorted(seen)


def _replica_table(calls: pd.DataFrame) -> list[dict[str, Any]]:
    unanswered = ~calls["answered"].astype(bool) & ~calls["cancelled"].astype(bool)
    g = calls.assign(unanswered=unanswered).groupby("callee_instance")
    table = pd.DataFrame(
        {
            "calls": g.size(),
            "errors": g["error"].sum().astype(int),
            "unanswered": g["unanswered"].sum().astype(int),
            "p50_ms": g["duration_ms"].median(),
            "p95_ms": g["duration_ms"].quantile(0.95),
            "network_ms": g["network_ms"].median(),
        }
    ).reset_index()
    table = table.rename(columns={"callee_instance": "instance"}).round(3)
    return [{str(k): v for k, v in r.items()} for r in table.to_dict("records")]


def _on_instance(service: str, instance: str, fraction: float) -> Callable[[Span, float], float]:
    """The share of a span's critical time a fix removes, for the replica's own spans and
    the calls made to it."""

    def excess(span: Span, critical_ms: float) -> float:
        mine = span.service == service and span.instance == instance
        to_it = (
            span.kind == CLIENT
            and str(span.attributes.get("app.upstream.service", "")) == service
            and str(span.attributes.get("app.upstream.instance", "")) == instance
        )
        return critical_ms * fraction if mine or to_it else 0.0

    return excess


def detect_slow_replicas(calls: pd.DataFrame, slow: Sequence[Profile]) -> list[Finding]:
    c = _service_calls(calls)
    tests: list[tuple[str, str, float, float, float, int]] = []
    for service, g in c.groupby("callee"):
        ok = g[~g["error"] & ~g["cancelled"]]
        if ok["callee_instance"].nunique() < 2:
            continue
        median = ok.groupby("operation")["duration_ms"].transform("median")
        rel = ok["duration_ms"] / median.where(median > 0, np.nan)
        for instance in sorted(ok["callee_instance"].unique()):
            mine = ok["callee_instance"] == instance
            p = mann_whitney_greater(rel[mine], rel[~mine])
            # Trimmed means, not medians: a replica slow only on its database calls leaves
            # its cache hits fast, and a median would not move; nor plain means: a busy
            # host's stalls hit every replica and would shrink the ratio.
            ratio = typical_mean(rel[mine]) / typical_mean(rel[~mine])
            excess = typical_mean(ok["duration_ms"][mine]) - typical_mean(ok["duration_ms"][~mine])
            tests.append((str(service), str(instance), p, ratio, excess, int(mine.sum())))
    adjusted = holm([t[2] for t in tests])
    out: list[Finding] = []
    for (service, instance, _, ratio, excess, n), p in zip(tests, adjusted, strict=True):
        if not np.isfinite(ratio) or ratio < 1.2:
            continue
        impact = tail_impact(slow, _on_instance(service, instance, 1.0 - 1.0 / ratio))
        if impact is None:
            continue
        peers = c[c["callee"] == service]
        significant = p < ALPHA and ratio >= SLOW_RATIO and excess >= SLOW_MIN_MS
        out.append(
            Finding(
                kind="slow_replica",
                subject={"service.name": service, "service.instance.id": instance},
                summary=(
                    f"Replica {instance} of {service} answers {ratio:.1f}× as slowly as its "
                    f"peers for the same calls (+{excess:.1f} ms on average); it costs the slowest "
                    f"{impact.route} requests ≈{impact.ms:.1f} ms."
                ),
                impact=Impact(impact.ms, "ms", impact.on, impact.score),
                confidence=confidence_from_p(p, n),
                severity=severity_for(impact.score, significant=significant),
                evidence=Evidence(
                    trace_ids=impact.trace_ids,
                    aggregate={
                        "replicas": _replica_table(peers),
                        "ratio": ratio,
                        "p_holm": p,
                        "saving_ms_by_route": impact.by_route,
                        "affects_services": upstream_of(calls, service),
                    },
                ),
            )
        )
    return out


def _longest_refused_run(mine: pd.DataFrame) -> tuple[int, int, int]:
    """(length, first start, last start) of the longest run of consecutive unanswered calls."""
    best = (0, 0, 0)
    run, first = 0, 0
    for answered, start in zip(mine["answered"], mine["start_ns"], strict=True):
        if answered:
            run = 0
            continue
        if run == 0:
            first = int(start)
        run += 1
        if run > best[0]:
            best = (run, first, int(start))
    return best


def _ejected(ejections: pd.DataFrame | None, service: str, instance: str) -> tuple[bool, bool]:
    """(was ejected in the window, still out at its end)."""
    if ejections is None or ejections.empty:
        return False, False
    e = ejections[(ejections["upstream"] == service) & (ejections["instance"] == instance)]
    if e.empty or not (e["event"] == "ejected").any():
        return False, False
    last = e.sort_values("ts").iloc[-1]
    return True, bool(last["event"] == "ejected")


def _in_force(ejections: pd.DataFrame | None, start_ns: int | None) -> pd.DataFrame | None:
    """The balancer events that bear on the window: those in it, and for each replica
    whose last event before it was an ejection, that ejection — it was still out when the
    window began (a replica that died before the window and stayed out leaves no call in
    it at all). Older history, ejections long since readmitted, is left out."""
    if ejections is None or ejections.empty or start_ns is None:
        return ejections
    start = pd.Timestamp(start_ns, unit="ns", tz="UTC")
    inside = ejections[ejections["ts"] >= start]
    before = ejections[ejections["ts"] < start].sort_values("ts", kind="stable")
    last = before.groupby(["upstream", "instance"], sort=False).tail(1)
    out = last[last["event"] == "ejected"]
    return pd.concat([out, inside]).sort_values("ts", kind="stable").reset_index(drop=True)


def detect_replica_down(
    calls: pd.DataFrame,
    typical: Sequence[Profile],
    ejections: pd.DataFrame | None = None,
    start_ns: int | None = None,
) -> list[Finding]:
    """``ejections`` may reach back before the window (``start_ns``): a replica ejected
    before it and not readmitted since is down throughout it."""
    ejections = _in_force(ejections, start_ns)
    c = _service_calls(calls)
    # Abandoned attempts were neither answered nor refused: they say nothing either way.
    c = c[(c["caller"] != EXTERNAL) & ~c["cancelled"]]
    pairs = {(str(s), str(i)) for s, i in zip(c["callee"], c["callee_instance"], strict=True)}
    if ejections is not None and not ejections.empty:
        pairs |= {
            (str(s), str(i))
            for s, i in zip(ejections["upstream"], ejections["instance"], strict=True)
        }
    rows: list[dict[str, Any]] = []
    for service, instance in sorted(pairs):
        g = c[c["callee"] == service]
        mine, peers = g[g["callee_instance"] == instance], g[g["callee_instance"] != instance]
        refused = int((~mine["answered"]).sum())
        run, run_start, run_end = _longest_refused_run(mine)
        peer_rate = (float((~peers["answered"]).sum()) + 0.5) / (len(peers) + 1.0)
        peers_answered = int((peers["answered"] & (peers["start_ns"] >= run_start)).sum())
        p_run = peer_rate**run if run >= DOWN_MIN_RUN and peers_answered >= 1 else 1.0
        p_silent, after = 1.0, 0
        if len(mine) and len(peers):
            first, last = int(mine["start_ns"].min()), int(mine["start_ns"].max())
            # Only while it was balanced alongside its peers: a process replaced by a new one
            # (a restart gets a new service.instance.id) was never their peer.
            alongside = int(((peers["start_ns"] >= first) & (peers["start_ns"] <= last)).sum())
            # A caller that tried it last (and got no answer) still had it in its rotation:
            # one refused call before the silence is enough, however few calls preceded it.
            in_rotation = alongside >= 1 or not bool(mine["answered"].iloc[-1])
            # Its observed share, but no more than a fair one: a balancer that happened to
            # favour it just before it went quiet must not make the silence look stranger.
            fair = 1.0 / max(int(g["callee_instance"].nunique()), 1)
            share = min(len(mine) / (len(mine) + alongside), fair)
            after = int((peers["start_ns"] > last).sum())
            if after >= MIN_SAMPLES and in_rotation:
                p_silent = (1.0 - share) ** after
        ejected, still_out = _ejected(ejections, service, instance)
        out_before = (
            ejected
            and start_ns is not None
            and ejections is not None
            and bool(
                (
                    (ejections["upstream"] == service)
                    & (ejections["instance"] == instance)
                    & (ejections["ts"] < pd.Timestamp(start_ns, unit="ns", tz="UTC"))
                ).any()
            )
        )
        # Back after its refusals (an answered call later), or readmitted by its caller.
        back = bool((mine["answered"] & (mine["start_ns"] > run_end)).any()) if run else True
        rows.append(
            {
                "service": service,
                "instance": instance,
                "refused": refused,
                "calls": len(mine),
                "run": run,
                "p_run": p_run,
                "p_silent": p_silent,
                "after": after,
                "ejected": ejected,
                "out_before": out_before,
                "still_out": still_out,
                "back": back and not still_out,
                "instances": int(g["callee_instance"].nunique() or 1) + (0 if len(mine) else 1),
                "peer_rate": peer_rate,
            }
        )
    adjusted_run = holm([r["p_run"] for r in rows])
    adjusted_silent = holm([r["p_silent"] for r in rows])
    out: list[Finding] = []
    for r, p_run, p_silent in zip(rows, adjusted_run, adjusted_silent, strict=True):
        if not (r["refused"] or r["ejected"] or p_silent < ALPHA):
            continue
        r["p_silent"] = p_silent
        r["recovered"] = r["back"] and p_silent >= ALPHA
        significant = r["ejected"] or p_run < ALPHA or p_silent < ALPHA
        share, ids = _failed_requests(typical, r["service"], r["instance"])
        capacity = 1.0 / max(int(r["instances"]), 1)
        score = (
            max(capacity, min(1.0, ERROR_WEIGHT * share))
            if not r["recovered"]
            else min(1.0, ERROR_WEIGHT * share)
        )
        p = min(p_run, p_silent, 1e-6 if r["ejected"] else 1.0)
        out.append(
            Finding(
                kind="replica_down",
                subject={"service.name": r["service"], "service.instance.id": r["instance"]},
                summary=_down_summary(r, share),
                impact=Impact(
                    capacity,
                    "capacity_share",
                    f"replicas of {r['service']} lost",
                    score,
                ),
                confidence=0.99 if r["ejected"] else confidence_from_p(p, max(r["after"], 1)),
                severity=severity_for(score, significant=significant),
                evidence=Evidence(
                    trace_ids=ids,
                    aggregate={
                        "refused_calls": r["refused"],
                        "calls": r["calls"],
                        "longest_refused_run": r["run"],
                        "peer_unanswered_rate": r["peer_rate"],
                        "p_run_holm": p_run,
                        "p_silent_holm": p_silent,
                        "peer_calls_after_its_last": r["after"],
                        "ejected": r["ejected"],
                        "error_share": share,
                        "replicas": _replica_table(c[c["callee"] == r["service"]])
                        if len(c)
                        else [],
                        "affects_services": upstream_of(calls, r["service"]),
                    },
                ),
            )
        )
    return out


def _down_summary(r: dict[str, Any], share: float) -> str:
    parts = [f"Replica {r['instance']} of {r['service']}"]
    parts.append("was down" if r["recovered"] else "stopped answering")
    facts = []
    if r["refused"]:
        calls = "call" if r["refused"] == 1 else "calls"
        facts.append(f"{r['refused']} {calls} to it went unanswered ({r['run']} in a row)")
    if r["ejected"]:
        when = " before this window" if r["out_before"] else ""
        facts.append(
            f"its caller ejected it{when}" + ("" if r["still_out"] else " and readmitted it")
        )
    if r["p_silent"] < ALPHA:
        facts.append(f"no call reached it while its peers took {r['after']}")
        if not r["refused"] and not r["ejected"]:
            facts.append("(no failed call in the sample: a deliberate scale-down looks the same)")
    tail = f"; {share:.1%} of requests failed with it" if share > 0 else ""
    return f"{' '.join(parts)}: {', '.join(facts) or 'see the evidence'}{tail}."


def _failed_requests(
    typical: Sequence[Profile], service: str, instance: str
) -> tuple[float, tuple[str, ...]]:
    """Share of sampled requests that failed with an unanswered call to the replica."""
    hits, ids = 0, []
    for p in typical:
        refused = any(
            s.kind == CLIENT
            and s.status_code == 2
            and str(s.attributes.get("app.upstream.service", "")) == service
            and str(s.attributes.get("app.upstream.instance", "")) == instance
            for s in p.spans()
        )
        if refused:
            ids.append(p.trace_id)
            hits += p.error
    return (hits / len(typical) if typical else 0.0), tuple(ids[:5])


def _failures_through(traces: Sequence[Trace], failed: set[str]) -> dict[tuple[str, str], int]:
    """(owner service, shard id) → how many of the ``failed`` attempts (client span ids)
    reached that shard: a span with ``app.shard.id`` anywhere below the attempt."""
    through: dict[tuple[str, str], int] = {}
    for t in traces:
        mine = [s for s in t.spans if s.span_id in failed]
        if not mine:
            continue
        children: dict[str, list[Span]] = {}
        for s in t.spans:
            if s.parent_span_id and s.parent_span_id != s.span_id:
                children.setdefault(s.parent_span_id, []).append(s)
        for attempt in mine:
            shards: set[tuple[str, str]] = set()
            todo, seen = [attempt.span_id], {attempt.span_id}
            while todo:
                for child in children.get(todo.pop(), ()):
                    if child.span_id in seen:
                        continue
                    seen.add(child.span_id)
                    todo.append(child.span_id)
                    shard = child.attributes.get("app.shard.id")
                    if shard is not None:
                        shards.add((child.service, str(shard)))
            for key in shards:
                through[key] = through.get(key, 0) + 1
    return through


def _storm_paths(g: pd.DataFrame, traces: Sequence[Trace]) -> dict[str, Any]:
    """Where the failed attempts of one edge failed: per replica, and per shard they
    reached (a failing or slow shard behind the callee sets retries off; a storm set off
    by anything else — a hiccup before any query, a refused connection — reaches none)."""
    failed = g[(g["error"] | ~g["answered"]) & ~g["cancelled"]]
    n = len(failed)
    through = _failures_through(traces, set(failed["span_id"].astype(str))) if n else {}
    by_instance = failed["callee_instance"].astype(str).value_counts()
    return {
        "failed_attempts": n,
        "failed_share_by_instance": {str(i): round(k / n, 4) for i, k in by_instance.items()},
        "failed_share_through_shards": [
            {"service.name": svc, "app.shard.id": shard, "share": round(k / n, 4)}
            for (svc, shard), k in sorted(through.items())
        ],
    }


def detect_retry_storm(calls: pd.DataFrame, traces: Sequence[Trace] = ()) -> list[Finding]:
    """``traces``: the sample ``calls`` came from, to say which shards the failed attempts
    reached (``failed_share_through_shards``); without it that list stays empty."""
    c = calls[(calls["target_kind"] == "service") & (calls["caller"] != EXTERNAL)].copy()
    c["end_ns"] = c["start_ns"] + (c["duration_ms"] * 1e6).astype("int64")
    tests: list[dict[str, Any]] = []
    for (caller, callee), g in c.groupby(["caller", "callee"]):
        resends = int((g["resend"] > 0).sum())
        first = len(g) - resends
        if first < MIN_SAMPLES:
            continue
        p = binom_greater(resends, len(g), BACKGROUND)
        g = g.sort_values("start_ns")
        third = (int(g["start_ns"].max()) - int(g["start_ns"].min())) / 3
        early = g[g["start_ns"] <= g["start_ns"].min() + third]
        late = g[g["start_ns"] >= g["start_ns"].max() - third]
        tests.append(
            {
                "caller": str(caller),
                "callee": str(callee),
                "attempts": len(g),
                "resends": resends,
                "per_call": resends / first,
                "p": p,
                "depth": int(g["resend"].max()) + 1,
                "gap_ms": _resend_gap_ms(g),
                "traces": int(g["trace_id"].nunique()),
                "early": _per_call(early),
                "late": _per_call(late),
                "paths": _storm_paths(g, traces),
            }
        )
    adjusted = holm([t["p"] for t in tests])
    out: list[Finding] = []
    for t, p in zip(tests, adjusted, strict=True):
        if t["resends"] == 0:
            continue
        per_call = float(t["per_call"])
        gap = t["gap_ms"]
        back_to_back = bool(np.isfinite(gap) and gap < NO_BACKOFF_MS)
        significant = p < ALPHA and (
            per_call >= STORM_FACTOR * RETRY_BUDGET
            or (back_to_back and per_call >= RETRY_BUDGET / 2)
        )
        score = min(1.0, STORM_WEIGHT * per_call)
        backoff = f", resent after a median {gap:.1f} ms" if np.isfinite(gap) else ""
        out.append(
            Finding(
                kind="retry_storm",
                subject={"service.name": t["caller"], "app.upstream.service": t["callee"]},
                summary=(
                    f"{t['caller']} resends {per_call:.2f} extra attempts per call to "
                    f"{t['callee']} (budget {RETRY_BUDGET:.0%}), up to {t['depth']} attempts "
                    f"per call{backoff}: {1 + per_call:.2f}× the load it would send."
                ),
                impact=Impact(
                    1.0 + per_call,
                    "load_ratio",
                    f"attempts per call from {t['caller']} to {t['callee']}",
                    score,
                ),
                confidence=confidence_from_p(p, int(t["attempts"])),
                severity=severity_for(score, significant=significant),
                evidence=Evidence(
                    trace_ids=tuple(
                        dict.fromkeys(
                            c[
                                (c["caller"] == t["caller"])
                                & (c["callee"] == t["callee"])
                                & (c["resend"] > 0)
                            ].sort_values("resend", ascending=False)["trace_id"]
                        )
                    )[:5],
                    aggregate={
                        "attempts": t["attempts"],
                        "resends": t["resends"],
                        "resends_per_call": per_call,
                        "budget": RETRY_BUDGET,
                        "background": BACKGROUND,
                        "max_attempts_per_call": t["depth"],
                        "median_gap_before_resend_ms": gap,
                        "resends_per_call_early": t["early"],
                        "resends_per_call_late": t["late"],
                        "p_holm": p,
                        "ratio": 1.0 + per_call,
                        "affects_services": upstream_of(calls, t["callee"]),
                        **t["paths"],
                    },
                ),
            )
        )
    return out


def _per_call(g: pd.DataFrame) -> float:
    resends = int((g["resend"] > 0).sum())
    first = len(g) - resends
    return resends / first if first else float("nan")


def _resend_gap_ms(g: pd.DataFrame) -> float:
    """Median time between an attempt's end and the next attempt of the same call."""
    o = g.sort_values(["trace_id", "start_ns"])
    same_trace = o["trace_id"].eq(o["trace_id"].shift(1))
    gaps = (o["start_ns"] - o["end_ns"].shift(1))[(o["resend"] > 0) & same_trace]
    return float((gaps.clip(lower=0) / 1e6).median()) if len(gaps) else float("nan")
