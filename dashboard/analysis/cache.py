"""Cache efficiency: hit ratio over time, hit vs miss latency, outages, stampedes, and the
what-if "expected latency if the hit ratio reached X".

A request's *fetch time* is what a hit would have spared it: the critical-path time of its
shard reads (``SELECT``) and of failed cache lookups. Impacts are estimated on the slow
traces: at hit ratio X a request that missed at ratio h would have hit with probability
(X − h) / (1 − h), saving its fetch time.

* outage: cache lookups erroring (≥ ``OUTAGE_MIN_SHARE`` of lookups, binomial test
  against a 0.1 % background);
* inefficiency: the hit ratio fell (last sixth of the window vs the first third,
  chi-square on hits and misses, ≥ ``DROP_MIN`` absolute) or stays below ``expected_hit_ratio``.
  Misses on the same key soon after it was fetched (a short TTL, a stampede) are
  reported as evidence when the sample has them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from dashboard.analysis.findings import Evidence, Finding, Impact, Severity, severity_for
from dashboard.analysis.profiles import Profile, tail_impact
from dashboard.analysis.stats import ALPHA, binom_greater, confidence_from_p, weighted_quantile
from dashboard.sources.model import Span

__all__ = [
    "detect_cache_inefficiency",
    "detect_cache_outage",
    "hit_ratio_series",
    "latency_by_outcome",
    "request_outcomes",
    "what_if_latency",
]

OUTAGE_MIN_SHARE = 0.05
#: A significant outage of at least this share of lookups is notable whatever it costs.
OUTAGE_ALARM_SHARE = 0.25
#: A significant hit-ratio fall that multiplies the misses by this much is notable.
MISS_RISE_ALARM = 1.5
DROP_MIN = 0.1
#: Assumed hit ratio of a working cache when the window holds no healthy period to learn it.
DEFAULT_REFERENCE = 0.8
REFETCH_WINDOW_S = 5.0
#: Lookups a hit ratio is computed from, at least.
MIN_LOOKUPS = 50


def hit_ratio_series(cache: pd.DataFrame) -> pd.DataFrame:
    """ts, cache, lookups, hit_ratio, error_ratio (from CACHE_COLUMNS)."""
    c = cache.copy()
    c["lookups"] = c["hits"] + c["misses"] + c["errors"]
    ok = c["lookups"].where(c["lookups"] > 0, np.nan)
    c["hit_ratio"] = c["hits"] / ok
    c["error_ratio"] = c["errors"] / ok
    return c[["ts", "cache", "lookups", "hit_ratio", "error_ratio"]].sort_values(["cache", "ts"])


def _fetch_ms(p: Profile) -> float:
    total = 0.0
    for sid, ms in p.critical_ms.items():
        s = p.tree.spans[sid]
        if _is_read(s.attributes) or (s.attributes.get("app.cache.name") and s.status_code == 2):
            total += ms
    return total


def _is_read(attrs: dict[str, Any]) -> bool:
    return attrs.get("app.shard.id") is not None and attrs.get("db.operation.name") == "SELECT"


def request_outcomes(group: Sequence[Profile]) -> pd.DataFrame:
    """One row per request that looked up a cache: trace_id, route, cache, start_ns,
    duration_ms, lookups, hits, errors, fetch_ms and outcome (hit | miss | error)."""
    rows = []
    for p in group:
        lookups = [s for s in p.spans() if s.attributes.get("app.cache.name")]
        if not lookups:
            continue
        errors = sum(1 for s in lookups if s.status_code == 2)
        hits = sum(
            1 for s in lookups if s.attributes.get("app.cache.hit") is True and s.status_code != 2
        )
        rows.append(
            {
                "trace_id": p.trace_id,
                "route": p.route,
                "cache": str(lookups[0].attributes["app.cache.name"]),
                "start_ns": p.tree.root.start_ns,
                "duration_ms": p.duration_ms,
                "lookups": len(lookups),
                "hits": hits,
                "errors": errors,
                "fetch_ms": _fetch_ms(p),
                "outcome": "error" if errors else ("hit" if hits == len(lookups) else "miss"),
                "path": p.entry.attributes.get("url.path") if p.entry else None,
            }
        )
    return pd.DataFrame(rows)


def latency_by_outcome(outcomes: pd.DataFrame) -> pd.DataFrame:
    """route × outcome → requests, p50_ms, p95_ms, mean_ms."""
    if outcomes.empty:
        return pd.DataFrame(columns=["route", "outcome", "requests", "p50_ms", "p95_ms", "mean_ms"])
    g = outcomes.groupby(["route", "outcome"])["duration_ms"]
    return pd.DataFrame(
        {
            "requests": g.size(),
            "p50_ms": g.median(),
            "p95_ms": g.quantile(0.95),
            "mean_ms": g.mean(),
        }
    ).reset_index()


def what_if_latency(outcomes: pd.DataFrame, route: str, hit_ratio: float, q: float = 0.95) -> float:
    """Expected q-quantile of ``route``'s latency if each lookup hit with ``hit_ratio``:
    a mixture of its all-hit requests and its other requests (all-hit latency estimated as
    duration − fetch time when the window has too few hits)."""
    r = outcomes[outcomes["route"] == route]
    if r.empty:
        return float("nan")
    hit = r[r["outcome"] == "hit"]["duration_ms"].to_numpy()
    miss = r[r["outcome"] != "hit"]
    if len(hit) < 5:
        hit = (miss["duration_ms"] - miss["fetch_ms"]).clip(lower=0).to_numpy()
    p_hit = float(hit_ratio ** r["lookups"].mean())
    values = np.concatenate([hit, miss["duration_ms"].to_numpy()])
    weights = np.concatenate(
        [
            np.full(len(hit), p_hit / max(len(hit), 1)),
            np.full(len(miss), (1 - p_hit) / max(len(miss), 1)),
        ]
    )
    return weighted_quantile(values, weights, q)


def _counts(cache: pd.DataFrame | None, outcomes: pd.DataFrame) -> pd.DataFrame:
    if cache is not None and not cache.empty:
        return cache
    if outcomes.empty:
        return pd.DataFrame(columns=["ts", "cache", "hits", "misses", "errors"])
    o = outcomes.assign(ts=pd.to_datetime(outcomes["start_ns"], unit="ns", utc=True))
    o["misses"] = o["lookups"] - o["hits"] - o["errors"]
    return o[["ts", "cache", "hits", "misses", "errors"]]


def detect_cache_outage(
    cache: pd.DataFrame | None,
    typical: Sequence[Profile],
    slow: Sequence[Profile],
    expected_hit_ratio: float | None = None,
) -> list[Finding]:
    outcomes = request_outcomes(typical)
    counts = _counts(cache, outcomes)
    out: list[Finding] = []
    for name, c in counts.groupby("cache"):
        hits, misses, errors = int(c["hits"].sum()), int(c["misses"].sum()), int(c["errors"].sum())
        lookups = hits + misses + errors
        if errors == 0 or lookups == 0:
            continue
        share = errors / lookups
        p = binom_greater(errors, lookups, 0.001)
        healthy = c[c["errors"] == 0]
        ref = expected_hit_ratio or _ratio(healthy) or DEFAULT_REFERENCE
        impact = tail_impact(_cached(slow), _fetch_saving(ref))
        score = impact.score if impact else 0.0
        significant = p < ALPHA and share >= OUTAGE_MIN_SHARE and errors >= 10
        on = impact.on if impact else "cache lookups"
        severity = severity_for(score, significant=significant)
        if significant and share >= OUTAGE_ALARM_SHARE and severity == "info":
            # The service runs without its cache: every read lands on the shards. That is
            # worth knowing before the latency shows it (a fast database, a light load).
            severity = "notable"
        out.append(
            Finding(
                kind="cache_outage",
                subject={"app.cache.name": str(name)},
                summary=(
                    f"Cache {name} fails {share:.0%} of lookups ({errors} errors); requests fall "
                    f"back to the shards"
                    + (
                        f", costing the slowest {impact.route} ≈{impact.ms:.1f} ms."
                        if impact
                        else "."
                    )
                ),
                impact=Impact(impact.ms if impact else 0.0, "ms", on, score),
                confidence=confidence_from_p(p, lookups),
                severity=severity,
                evidence=Evidence(
                    trace_ids=tuple(outcomes[outcomes["outcome"] == "error"]["trace_id"].head(5))
                    if not outcomes.empty
                    else (),
                    aggregate={
                        "lookups": lookups,
                        "errors": errors,
                        "error_share": share,
                        "reference_hit_ratio": ref,
                        "latency_by_outcome": latency_by_outcome(outcomes)
                        .round(3)
                        .to_dict("records"),
                    },
                ),
            )
        )
    return out


def _is_fetch(span: Span) -> bool:
    failed_lookup = bool(span.attributes.get("app.cache.name")) and span.status_code == 2
    return _is_read(span.attributes) or failed_lookup


def _cached(group: Sequence[Profile]) -> list[Profile]:
    """The requests that looked a cache up (only their reads are cache misses)."""
    return [p for p in group if any(s.attributes.get("app.cache.name") for s in p.spans())]


def _fetch_saving(probability: float) -> Callable[[Span, float], float]:
    """A fetch's critical time, saved with the probability that the lookup would hit."""

    def excess(span: Span, critical_ms: float) -> float:
        return critical_ms * probability if _is_fetch(span) else 0.0

    return excess


def _ratio(c: pd.DataFrame) -> float | None:
    n = float(c["hits"].sum() + c["misses"].sum())
    return float(c["hits"].sum()) / n if n >= MIN_LOOKUPS else None


def detect_cache_inefficiency(
    cache: pd.DataFrame | None,
    typical: Sequence[Profile],
    slow: Sequence[Profile],
    expected_hit_ratio: float | None = None,
) -> list[Finding]:
    outcomes = request_outcomes(typical)
    counts = _counts(cache, outcomes)
    out: list[Finding] = []
    for name, c in counts.groupby("cache"):
        c = c.groupby("ts")[["hits", "misses", "errors"]].sum().sort_index()
        if c["errors"].sum() > 0.5 * (c["hits"].sum() + c["misses"].sum() + c["errors"].sum()):
            continue  # an outage, not an inefficiency
        # The latest sixth is "now" (a short TTL drains old entries gradually, so the
        # newest state shows it best), reaching back until it holds MIN_LOOKUPS (the newest
        # buckets are still filling while telemetry arrives); the first third is "before".
        n_early = max(1, len(c) // 3)
        early = c.iloc[:n_early]
        n_late = max(1, len(c) // 6)
        lookups = c[["hits", "misses"]].sum(axis=1)
        while n_late < len(c) - n_early and lookups.iloc[-n_late:].sum() < MIN_LOOKUPS:
            n_late += 1
        late = c.iloc[-n_late:]
        now = _ratio(late) if len(c) >= 3 else _ratio(c)
        before = _ratio(early) if len(c) >= 3 else None
        if now is None:
            continue
        p, dropped = 1.0, False
        if before is not None:
            table = [
                [late["hits"].sum(), late["misses"].sum()],
                [early["hits"].sum(), early["misses"].sum()],
            ]
            p = (
                float(sps.chi2_contingency(np.asarray(table, dtype=float))[1])
                if before > now
                else 1.0
            )
            dropped = p < ALPHA and before - now >= DROP_MIN
        ref = (
            expected_hit_ratio if expected_hit_ratio is not None else (before if dropped else None)
        )
        if ref is None or ref <= now:
            continue
        gain = (ref - now) / (1.0 - now) if now < 1 else 0.0
        impact = tail_impact(_cached(slow), _fetch_saving(gain))
        if impact is None:
            continue
        significant = dropped or (expected_hit_ratio is not None and ref - now >= DROP_MIN)
        notes = _refetch_note(outcomes)
        what_if = (
            {
                route: {
                    "p95_now_ms": what_if_latency(outcomes, route, now),
                    f"p95_at_{ref:.2f}_ms": what_if_latency(outcomes, route, ref),
                }
                for route in sorted(outcomes["route"].unique())
            }
            if not outcomes.empty
            else {}
        )
        out.append(
            Finding(
                kind="cache_inefficiency",
                subject={"app.cache.name": str(name)},
                summary=(
                    f"Cache {name} hits {now:.0%} of lookups"
                    + (
                        f" (down from {before:.0%})"
                        if dropped and before is not None
                        else f" (expected {ref:.0%})"
                    )
                    + f"; at {ref:.0%} the slowest {impact.route} would be "
                    + f"≈{impact.ms:.1f} ms faster."
                ),
                impact=Impact(impact.ms, "ms", impact.on, impact.score),
                confidence=confidence_from_p(
                    p if dropped else 0.05, int(c[["hits", "misses"]].sum().sum())
                ),
                severity=_inefficiency_severity(impact.score, significant, dropped, ref, now),
                evidence=Evidence(
                    trace_ids=impact.trace_ids,
                    aggregate={
                        "hit_ratio_now": now,
                        "hit_ratio_before": before,
                        "reference_hit_ratio": ref,
                        "p_drop": p,
                        "what_if": what_if,
                    },
                    notes=notes,
                ),
            )
        )
    return out


def _inefficiency_severity(
    score: float, significant: bool, dropped: bool, ref: float, now: float
) -> Severity:
    """From the latency a fix saves; but a significant fall that sends ≥ ``MISS_RISE_ALARM``
    times as many lookups on to the shards is notable even where the shards are fast
    enough for the latency to hide it (the load moved, and it is what runs out next)."""
    severity = severity_for(score, significant=significant)
    if severity == "info" and dropped and (1.0 - now) >= MISS_RISE_ALARM * (1.0 - ref):
        return "notable"
    return severity


def _refetch_note(outcomes: pd.DataFrame) -> tuple[str, ...]:
    """Misses on a key fetched < REFETCH_WINDOW_S earlier: the TTL is short or a stampede."""
    if outcomes.empty or outcomes["path"].isna().all():
        return ()
    m = outcomes[(outcomes["outcome"] == "miss") & outcomes["path"].notna()].sort_values("start_ns")
    gaps = m.groupby("path")["start_ns"].diff().dropna() / 1e9
    if len(m) < 20 or gaps.empty:
        return ()
    quick = int((gaps < REFETCH_WINDOW_S).sum())
    return (
        f"{quick} of {len(m)} sampled misses re-fetched a key missed < {REFETCH_WINDOW_S:.0f} s "
        f"earlier (short TTL or stampede); shortest gap {gaps.min():.2f} s",
    )
