"""What `narrows capacity` prints: the measured steps, the USL fit with its error, and the plan.

Text for people, JSON for scripts (``--json``: one object on stdout, nothing else). Values
that are infinite (no coherency term → no peak; linear scaling → no limit) are ``null`` in
JSON and named in words in the text, never printed as a made-up number.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dashboard.analysis.capacity import CapacityPlan, littles_law

__all__ = ["CapacityResult", "render_json", "render_text"]

#: Little's law ratio outside this band is worth a note (time outside the request, or a
#: latency distribution whose median is far from its mean).
_LITTLE_BAND = (0.8, 1.2)


@dataclass(frozen=True)
class CapacityResult:
    sweep: pd.DataFrame
    plan: CapacityPlan
    #: Where the sweep came from: ``{"demo_url", "step_seconds", "routes"}`` or ``{"file"}``.
    source: dict[str, Any]

    def steps(self) -> pd.DataFrame:
        """The sweep with Little's-law columns, sorted by concurrency."""
        law = littles_law(self.sweep)
        out = self.sweep.copy()
        out["implied_concurrency"] = law["implied_concurrency"]
        out["littles_ratio"] = law["ratio"]
        return out.sort_values("concurrency", kind="stable").reset_index(drop=True)

    def measured_max(self) -> tuple[float, float]:
        """The highest measured throughput and the concurrency it was measured at."""
        i = int(self.sweep["throughput_rps"].to_numpy(float).argmax())
        return (
            float(self.sweep["throughput_rps"].iloc[i]),
            float(self.sweep["concurrency"].iloc[i]),
        )

    def notes(self) -> list[str]:
        notes = list(self.plan.notes)
        steps = self.steps()
        off = steps[
            (steps["littles_ratio"] < _LITTLE_BAND[0]) | (steps["littles_ratio"] > _LITTLE_BAND[1])
        ]
        if not off.empty:
            where = ", ".join(
                f"N={n:g}: {r:.2f}"
                for n, r in zip(off["concurrency"], off["littles_ratio"], strict=True)
            )
            notes.append(
                f"Little's law is off at {where} (throughput × latency / N; 1 for a closed loop "
                "without think time): time is spent outside the measured request, e.g. in the "
                "load generator itself"
            )
        failing = steps[steps["error_rate"] > 0.01]
        if not failing.empty:
            where = ", ".join(
                f"N={n:g}: {e:.1%}"
                for n, e in zip(failing["concurrency"], failing["error_rate"], strict=True)
            )
            notes.append(f"errors (5xx or transport) at {where}: throughput counts them")
        return notes


def _finite(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def render_json(result: CapacityResult) -> str:
    plan, fit = result.plan, result.plan.fit
    measured, measured_at = result.measured_max()
    steps = [{k: _finite(v) for k, v in row.items()} for row in result.steps().to_dict("records")]
    doc = {
        "source": result.source,
        "steps": steps,
        "usl": {
            "lambda": _finite(fit.lam),
            "sigma": _finite(fit.sigma),
            "kappa": _finite(fit.kappa, 9),
            "lambda_se": _finite(fit.lam_se),
            "sigma_se": _finite(fit.sigma_se),
            "kappa_se": _finite(fit.kappa_se, 9),
            "r2": _finite(fit.r2),
            "mape": _finite(fit.mape),
            "rmse_rps": _finite(fit.rmse),
            "points": fit.points,
        },
        "knee_concurrency": _finite(fit.knee),
        "peak_concurrency": _finite(fit.peak_concurrency),
        "max_throughput_rps": _finite(fit.max_throughput),
        "saturated": plan.saturated,
        "measured_max_throughput_rps": _finite(measured),
        "measured_max_at_concurrency": _finite(measured_at),
        "slo": None
        if plan.slo_p99_ms is None
        else {
            "p99_ms": plan.slo_p99_ms,
            "concurrency": _finite(plan.slo_concurrency),
            "throughput_rps": _finite(plan.slo_throughput),
        },
        "target_rps": plan.target_rps,
        "headroom": plan.headroom,
        "per_replica_rps": _finite(plan.per_replica_rps),
        "replicas": plan.replicas,
        "notes": result.notes(),
    }
    return json.dumps(doc, indent=2)


def _table(steps: pd.DataFrame) -> list[str]:
    header = ["N", "req/s", "err %", "p50 ms", "p99 ms", "X·R", "X·R / N"]
    latency = "mean" if "mean_ms" in steps.columns else "p50"
    rows = [
        [
            f"{r['concurrency']:g}",
            f"{r['throughput_rps']:.1f}",
            f"{100 * r['error_rate']:.2f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            f"{r['implied_concurrency']:.2f}",
            f"{r['littles_ratio']:.2f}",
        ]
        for r in steps.to_dict("records")
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in [header, *rows]
    ]
    lines.append(
        f"X·R: the concurrency Little's law implies (throughput × {latency} latency); "
        "≈ N in a closed loop"
    )
    return lines


def _source_line(source: dict[str, Any], steps: int) -> str:
    if "file" in source:
        return f"narrows capacity: sweep read from {source['file']} ({steps} steps)"
    routes = ", ".join(source.get("routes", []))
    return (
        f"narrows capacity: closed-loop sweep of {source['demo_url']}, {steps} steps of "
        f"{source['step_seconds']:g} s ({routes})"
    )


def render_text(result: CapacityResult) -> str:
    plan, fit = result.plan, result.plan.fit
    steps = result.steps()
    lines = [_source_line(result.source, len(steps)), "", *_table(steps), ""]
    lines += [
        "Universal Scalability Law  X(N) = λN / (1 + σ(N−1) + κN(N−1))",
        f"  λ  one client       {fit.lam:.2f} ± {fit.lam_se:.2f} req/s",
        f"  σ  contention       {fit.sigma:.4f} ± {fit.sigma_se:.4f}",
        f"  κ  coherency        {fit.kappa:.6f} ± {fit.kappa_se:.6f}",
        f"  fit error          R² {fit.r2:.3f}, mean error {fit.mape:.1%}, "
        f"RMSE {fit.rmse:.1f} req/s over {fit.points} steps",
        "",
        "Capacity",
    ]
    knee = "none (linear scaling)" if math.isinf(fit.knee) else f"N ≈ {fit.knee:.1f}"
    peak = (
        "none (κ = 0: throughput levels off instead of falling)"
        if math.isinf(fit.peak_concurrency)
        else f"N ≈ {fit.peak_concurrency:.1f}"
    )
    measured, measured_at = result.measured_max()
    best = f"measured best {measured:.1f} req/s at N={measured_at:g}"
    if not math.isfinite(fit.max_throughput):
        predicted = f"no limit in sight; {best}"
    else:
        predicted = (
            f"{fit.max_throughput:.1f} req/s predicted; {best} "
            f"({fit.max_throughput / measured - 1:+.1%})"
        )
        if not plan.saturated:
            predicted += " — an extrapolation, see notes"
    lines += [
        f"  knee               {knee}  (past it, throughput is under half of λ·N)",
        f"  peak               {peak}",
        f"  max throughput     {predicted}",
    ]
    if plan.slo_p99_ms is not None:
        within = (
            "not met at any step"
            if plan.slo_throughput is None or plan.slo_concurrency is None
            else f"{plan.slo_throughput:.1f} req/s (N ≈ {plan.slo_concurrency:.1f})"
        )
        lines.append(f"  within p99 ≤ {plan.slo_p99_ms:g} ms  {within}")
    if plan.target_rps is None:
        lines.append("  replicas           give --target-rps to size replicas")
    elif plan.replicas is None:
        lines.append(f"  replicas           cannot size for {plan.target_rps:g} req/s (see notes)")
    else:
        basis = (
            "within the SLO"
            if plan.slo_throughput is not None
            else "at the predicted max"
            if plan.saturated
            else "measured"
        )
        exact = plan.target_rps / (plan.per_replica_rps * plan.headroom)
        lines.append(
            f"  replicas           {plan.replicas} for {plan.target_rps:g} req/s  "
            f"({plan.target_rps:g} / ({plan.per_replica_rps:.1f} req/s {basis} × "
            f"{plan.headroom:g} headroom) = {exact:.2f}, rounded up)"
        )
    notes = result.notes()
    if notes:
        lines += ["", "Notes", *(f"  - {n}" for n in notes)]
    return "\n".join(lines)
