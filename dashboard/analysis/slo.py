"""SLO burn: how fast the error budget is being spent, over a long and a short window.

The burn rate is the bad-request ratio divided by the budget (1 − objective): at burn 1
the budget lasts exactly the SLO period. Alerts follow the Google SRE workbook's
multi-window, multi-burn-rate table: an alert fires only when both its long window
(the trend) and its short window (still happening) burn faster than its threshold.
Windows longer than the data are cut to the data, and the evidence says so.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dashboard.analysis.findings import ERROR_WEIGHT, Evidence, Finding, Impact, Severity
from dashboard.analysis.inputs import SloObjective
from dashboard.analysis.profiles import Profile, service_of
from dashboard.analysis.stats import ALPHA, binom_greater

__all__ = ["DEFAULT_ALERTS", "BurnAlert", "burn_rates", "detect_slo_burn", "time_to_exhaustion"]

MIN_BAD = 10
#: Share of a slow-burn alert's short window the data must cover (a partial newest bucket
#: aside).
MIN_COVERED = 0.95


@dataclass(frozen=True)
class BurnAlert:
    long_s: float
    short_s: float
    threshold: float
    severity: Severity
    name: str


#: SRE workbook, 30-day SLO: page on 2 % of the budget in 1 h or 5 % in 6 h; ticket on
#: 10 % in 3 days.
DEFAULT_ALERTS: tuple[BurnAlert, ...] = (
    BurnAlert(3600, 300, 14.4, "critical", "fast burn (1 h / 5 m)"),
    BurnAlert(6 * 3600, 1800, 6.0, "critical", "fast burn (6 h / 30 m)"),
    BurnAlert(24 * 3600, 7200, 3.0, "notable", "slow burn (1 d / 2 h)"),
    BurnAlert(3 * 24 * 3600, 6 * 3600, 1.0, "notable", "slow burn (3 d / 6 h)"),
)


def _bad(red: pd.DataFrame, slo: SloObjective, slow_share: float) -> pd.Series:
    """Bad requests per row: errors, plus requests over the latency objective (the RED
    column ``over_slo`` when the source has it, else estimated from the trace sample)."""
    bad = red["errors"].astype(float)
    if slo.latency_ms is not None:
        if "over_slo" in red.columns:
            bad = bad + red["over_slo"].astype(float)
        else:
            bad = bad + (red["requests"] - red["errors"]).astype(float) * slow_share
    return bad


def burn_rates(
    red: pd.DataFrame,
    slo: SloObjective,
    windows: Sequence[float],
    *,
    slow_share: float = 0.0,
) -> pd.DataFrame:
    """window_s, covered_s, requests, bad, bad_ratio, burn_rate for windows ending at the
    latest bucket (all routes together)."""
    per_ts = red.assign(bad=_bad(red, slo, slow_share)).groupby("ts")[["requests", "bad"]].sum()
    per_ts = per_ts.sort_index()
    if per_ts.empty:
        return pd.DataFrame(
            columns=["window_s", "covered_s", "requests", "bad", "bad_ratio", "burn_rate"]
        )
    stamps = per_ts.index
    step = (stamps[1] - stamps[0]).total_seconds() if len(stamps) > 1 else 60.0
    end = stamps[-1] + pd.Timedelta(seconds=step)
    rows = []
    for w in windows:
        part = per_ts[stamps >= end - pd.Timedelta(seconds=w)]
        covered = min(w, (end - part.index[0]).total_seconds()) if len(part) else 0.0
        n, bad = float(part["requests"].sum()), float(part["bad"].sum())
        ratio = bad / n if n else 0.0
        rows.append(
            {
                "window_s": w,
                "covered_s": covered,
                "requests": n,
                "bad": bad,
                "bad_ratio": ratio,
                "burn_rate": ratio / (1.0 - slo.availability),
            }
        )
    return pd.DataFrame(rows)


def time_to_exhaustion(burn_rate: float, slo: SloObjective, remaining: float = 1.0) -> float:
    """Seconds until ``remaining`` (share of the period's budget) is spent at this rate."""
    return math.inf if burn_rate <= 0 else remaining * slo.period_s / burn_rate


def detect_slo_burn(
    red: pd.DataFrame | None,
    slo: SloObjective,
    typical: Sequence[Profile] = (),
    alerts: Sequence[BurnAlert] = DEFAULT_ALERTS,
) -> list[Finding]:
    if red is None or red.empty:
        return []
    slow_share = 0.0
    if slo.latency_ms is not None and typical:
        ok = [p for p in typical if not p.error]
        slow_share = sum(1 for p in ok if p.duration_ms > slo.latency_ms) / max(len(ok), 1)
    windows = sorted({w for a in alerts for w in (a.long_s, a.short_s)})
    table = burn_rates(red, slo, windows, slow_share=slow_share)
    rows = {float(r["window_s"]): r for r in table.to_dict("records")}
    budget = 1.0 - slo.availability
    fired = [
        a
        for a in alerts
        if rows[a.long_s]["burn_rate"] >= a.threshold
        and rows[a.short_s]["burn_rate"] >= a.threshold
        and rows[a.short_s]["bad"] >= MIN_BAD
        # A slow burn (a ticket) needs data spanning its short window: minutes of data
        # cannot show a burn that takes days. A fast burn (a page) is judged on what there is.
        and (a.severity == "critical" or rows[a.short_s]["covered_s"] >= MIN_COVERED * a.short_s)
        and _beyond_chance(rows[a.short_s], a.threshold * budget)
    ]
    short = rows[min(windows)]
    burn = float(short["burn_rate"])
    if not fired and burn < 1.0:
        return []
    worst = fired[0] if fired else None
    ratio = float(short["bad_ratio"])
    tte = time_to_exhaustion(burn, slo)
    objective = f"availability {slo.availability:.3%}" + (
        f", p ≤ {slo.latency_ms:g} ms" if slo.latency_ms is not None else ""
    )
    notes = tuple(
        f"window {w:g} s covers only {row['covered_s']:.0f} s of data"
        for w, row in rows.items()
        if row["covered_s"] < w
    )
    return [
        Finding(
            kind="slo_burn",
            subject={"slo": objective, **_service(typical)},
            summary=(
                f"{ratio:.1%} of requests are bad: the error budget burns {burn:.1f}× too fast"
                + (f" ({worst.name})" if worst else "")
                + f"; at this rate the {slo.period_s / 86400:g}-day budget lasts {_human(tte)}."
            ),
            impact=Impact(ratio, "error_share", "all requests", min(1.0, ERROR_WEIGHT * ratio)),
            confidence=0.95 if worst else 0.5,
            severity=worst.severity if worst else "info",
            evidence=Evidence(
                aggregate={
                    "burn": table.round(4).to_dict("records"),
                    "time_to_exhaustion_s": tte if math.isfinite(tte) else None,
                    "alerts_firing": [a.name for a in fired],
                },
                notes=notes[:2],
            ),
        )
    ]


def _beyond_chance(row: Mapping[Hashable, Any], threshold_ratio: float) -> bool:
    """The window's bad ratio is above the alert's threshold beyond chance (binomial test,
    α): seconds of data, or a handful of slow requests on a noisy host, are not a burn."""
    n = round(float(row["requests"]))
    return n > 0 and binom_greater(round(float(row["bad"])), n, threshold_ratio) < ALPHA


def _service(typical: Sequence[Profile]) -> dict[str, str]:
    svc = service_of(typical)
    return {"service.name": svc} if svc else {}


def _human(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "forever"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
