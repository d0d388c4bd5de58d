"""Capacity: Little's law, the Universal Scalability Law, and how many replicas a target
rate needs within a latency SLO.

USL (Gunther): throughput at concurrency N is X(N) = λN / (1 + σ(N − 1) + κN(N − 1)),
with λ the throughput of one client, σ contention (the serial fraction: a lock, a pool)
and κ coherency (crosstalk, making throughput fall past a peak). Fitted by non-linear
least squares on relative error (scipy ``curve_fit``), with standard errors and the
fit's error reported, never hidden. Peak N* = √((1 − σ)/κ); the knee is where each added
client yields half its ideal throughput (1 + σ(N − 1) + κN(N − 1) = 2).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit

from dashboard.analysis.findings import Evidence, Finding, Impact, severity_for
from dashboard.analysis.inputs import SWEEP_COLUMNS, require_columns

__all__ = [
    "CapacityPlan",
    "UslFit",
    "capacity_plan",
    "detect_saturation",
    "fit_usl",
    "littles_law",
    "replicas_needed",
]

#: Plan for this share of the measured capacity (headroom for bursts and failover).
HEADROOM = 0.8
#: Live throughput at this share of the capacity within the SLO is saturation.
SATURATION_SHARE = 0.85


def usl(n: np.ndarray, lam: float, sigma: float, kappa: float) -> np.ndarray:
    return lam * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))


@dataclass(frozen=True)
class UslFit:
    lam: float
    sigma: float
    kappa: float
    lam_se: float
    sigma_se: float
    kappa_se: float
    #: Goodness of fit on the sweep: R², mean absolute percentage error, RMSE (req/s).
    r2: float
    mape: float
    rmse: float
    points: int

    def throughput(self, n: float) -> float:
        return float(usl(np.asarray([n], dtype=float), self.lam, self.sigma, self.kappa)[0])

    def latency_ms(self, n: float) -> float:
        """Mean response time by Little's law, R = N / X."""
        x = self.throughput(n)
        return 1000.0 * n / x if x > 0 else math.inf

    @property
    def peak_concurrency(self) -> float:
        return math.sqrt((1.0 - self.sigma) / self.kappa) if self.kappa > 0 else math.inf

    @property
    def max_throughput(self) -> float:
        if self.kappa > 0:
            return self.throughput(max(1.0, self.peak_concurrency))
        return self.lam / self.sigma if self.sigma > 0 else math.inf

    @property
    def knee(self) -> float:
        a, b, c = self.kappa, self.sigma - self.kappa, -(1.0 + self.sigma)
        root = math.sqrt(b * b - 4 * a * c)
        # The cancellation-free form of the positive root; b + root is 0 only when σ = κ = 0
        # (linear scaling: no knee).
        n = -2 * c / (b + root) if b + root > 0 else math.inf
        return min(n, self.peak_concurrency)


def fit_usl(concurrency: np.ndarray | pd.Series, throughput: np.ndarray | pd.Series) -> UslFit:
    n = np.asarray(concurrency, dtype=float)
    x = np.asarray(throughput, dtype=float)
    keep = np.isfinite(n) & np.isfinite(x) & (n > 0) & (x > 0)
    n, x = n[keep], x[keep]
    if len(n) < 3:
        raise ValueError(f"a USL fit needs at least 3 load steps with throughput; got {len(n)}")
    lam0 = float(np.max(x[n == n.min()] / n.min()))
    params, cov = curve_fit(
        usl,
        n,
        x,
        p0=[lam0, 0.05, 0.001],
        sigma=x,
        bounds=([0.0, 0.0, 0.0], [np.inf, 1.0, 1.0]),
        maxfev=20000,
    )
    errors = (
        np.sqrt(np.clip(np.diag(cov), 0.0, None)) if np.all(np.isfinite(cov)) else [math.nan] * 3
    )
    pred = usl(n, *params)
    resid = x - pred
    ss_tot = float(np.sum((x - x.mean()) ** 2))
    return UslFit(
        lam=float(params[0]),
        sigma=float(params[1]),
        kappa=float(params[2]),
        lam_se=float(errors[0]),
        sigma_se=float(errors[1]),
        kappa_se=float(errors[2]),
        r2=1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else 1.0,
        mape=float(np.mean(np.abs(resid) / x)),
        rmse=float(np.sqrt(np.mean(resid**2))),
        points=len(n),
    )


def littles_law(sweep: pd.DataFrame) -> pd.DataFrame:
    """Per step: the concurrency Little's law implies (X × latency) against the clients
    that ran. Close to 1 for a closed loop without think time; well below 1 means time
    outside the service (client overhead, think time). The law holds for the *mean*
    latency: a sweep with a ``mean_ms`` column uses it, otherwise the median stands in
    (which reads low when the latency distribution is right-skewed)."""
    latency = "mean_ms" if "mean_ms" in sweep.columns else "p50_ms"
    out = sweep[["concurrency", "throughput_rps", latency]].copy()
    out["implied_concurrency"] = out["throughput_rps"] * out[latency] / 1000.0
    out["ratio"] = out["implied_concurrency"] / out["concurrency"]
    return out


@dataclass(frozen=True)
class CapacityPlan:
    fit: UslFit
    slo_p99_ms: float | None
    #: Highest concurrency / throughput whose p99 stays within the SLO (from the sweep's
    #: measured p99, interpolated; throughput from the fit).
    slo_concurrency: float | None
    slo_throughput: float | None
    target_rps: float | None
    replicas: int | None
    notes: tuple[str, ...]
    #: Share of the per-replica capacity the replica count plans for.
    headroom: float = HEADROOM
    #: The highest throughput the sweep measured.
    measured_max_rps: float = math.nan
    #: The sweep reached the knee; if not, the fit's maximum is an extrapolation.
    saturated: bool = True

    @property
    def per_replica_rps(self) -> float:
        """What one replica is counted on for: the throughput within the SLO when there is
        one; else the fit's maximum when the sweep reached saturation; else the best
        throughput measured (a lower bound — an unsaturated fit can promise anything)."""
        if self.slo_throughput is not None:
            return self.slo_throughput
        return self.fit.max_throughput if self.saturated else self.measured_max_rps


def _slo_concurrency(sweep: pd.DataFrame, slo_p99_ms: float) -> tuple[float | None, str | None]:
    s = sweep.sort_values("concurrency")
    n, p99 = s["concurrency"].to_numpy(float), s["p99_ms"].to_numpy(float)
    if p99[0] > slo_p99_ms:
        return None, f"p99 exceeds {slo_p99_ms:g} ms already at concurrency {n[0]:g}"
    over = np.nonzero(p99 > slo_p99_ms)[0]
    if len(over) == 0:
        return float(n[-1]), f"p99 stays within {slo_p99_ms:g} ms up to the sweep's last step"
    i = int(over[0])
    frac = (slo_p99_ms - p99[i - 1]) / (p99[i] - p99[i - 1])
    return float(n[i - 1] + frac * (n[i] - n[i - 1])), None


def replicas_needed(target_rps: float, per_replica_rps: float, headroom: float = HEADROOM) -> int:
    if per_replica_rps <= 0:
        raise ValueError("per-replica throughput must be positive")
    if not 0 < headroom <= 1:
        raise ValueError(f"headroom must be within (0, 1]; got {headroom}")
    return max(1, math.ceil(target_rps / (per_replica_rps * headroom)))


def capacity_plan(
    sweep: pd.DataFrame,
    *,
    target_rps: float | None = None,
    slo_p99_ms: float | None = None,
    headroom: float = HEADROOM,
) -> CapacityPlan:
    require_columns(
        sweep, {k: v for k, v in SWEEP_COLUMNS.items() if k != "error_rate"}, "load_sweep"
    )
    fit = fit_usl(sweep["concurrency"], sweep["throughput_rps"])
    notes = []
    if fit.mape > 0.1:
        notes.append(
            f"the USL fits the sweep poorly (mean error {fit.mape:.0%}): treat it as rough"
        )
    slo_n = slo_x = None
    if slo_p99_ms is not None:
        slo_n, note = _slo_concurrency(sweep, slo_p99_ms)
        if note:
            notes.append(note)
        if slo_n is not None:
            slo_x = min(fit.throughput(slo_n), fit.max_throughput)
    measured_max = float(sweep["throughput_rps"].max())
    largest = float(sweep["concurrency"].max())
    saturated = fit.knee <= largest
    if not saturated:
        knee = "beyond any finite N" if math.isinf(fit.knee) else f"at N ≈ {fit.knee:.3g}"
        notes.append(
            f"the sweep ended at N = {largest:g}, before the knee ({knee}): throughput was "
            "still growing, so the predicted maximum is an extrapolation and replicas are "
            f"sized on the {measured_max:.4g} req/s measured (a lower bound); sweep to a "
            "higher concurrency"
        )
    plan = CapacityPlan(
        fit,
        slo_p99_ms,
        slo_n,
        slo_x,
        target_rps,
        None,
        (),
        headroom,
        measured_max,
        saturated,
    )
    replicas = None
    per_replica = plan.per_replica_rps
    if target_rps is not None and per_replica > 0 and math.isfinite(per_replica):
        replicas = replicas_needed(target_rps, per_replica, headroom)
    elif target_rps is not None:
        notes.append("no replica count: the sweep measured no throughput")
    return dataclasses.replace(plan, replicas=replicas, notes=tuple(notes))


def detect_saturation(
    red: pd.DataFrame | None,
    sweep: pd.DataFrame | None,
    slo_p99_ms: float | None = None,
    service: str | None = None,
) -> list[Finding]:
    """Live throughput close to what the sweep says one instance can do."""
    if red is None or red.empty or sweep is None or len(sweep) < 3:
        return []
    plan = capacity_plan(sweep, slo_p99_ms=slo_p99_ms)
    capacity = plan.slo_throughput or plan.fit.max_throughput
    per_ts = red.groupby("ts")["requests"].sum().sort_index()
    if len(per_ts) < 2 or not math.isfinite(capacity) or capacity <= 0:
        return []
    step = (per_ts.index[1] - per_ts.index[0]).total_seconds()
    recent = per_ts.iloc[-max(1, len(per_ts) // 3) :]
    live = float(recent.mean()) / step
    share = live / capacity
    score = min(1.0, max(0.0, (share - 0.5) / 0.5))
    return [
        Finding(
            kind="saturation",
            subject={"service.name": service} if service else {"scope": "service"},
            summary=(
                f"The service runs at {live:.0f} req/s, {share:.0%} of the {capacity:.0f} req/s "
                f"one instance sustains{' within the SLO' if plan.slo_throughput else ''}."
            ),
            impact=Impact(share, "load_ratio", "live throughput / capacity", score),
            confidence=max(0.0, min(1.0, 1.0 - plan.fit.mape)),
            severity=severity_for(score, significant=share >= SATURATION_SHARE),
            evidence=Evidence(
                aggregate={
                    "live_rps": live,
                    "capacity_rps": capacity,
                    "usl": {
                        "lambda": plan.fit.lam,
                        "sigma": plan.fit.sigma,
                        "kappa": plan.fit.kappa,
                        "mape": plan.fit.mape,
                    },
                },
                notes=plan.notes,
            ),
        )
    ]
