"""Capacity: the USL fit recovers known parameters; the plan turns it into replicas."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dashboard.analysis.capacity import (
    capacity_plan,
    detect_saturation,
    fit_usl,
    littles_law,
    replicas_needed,
    usl,
)

STEPS = np.array([1, 2, 4, 8, 12, 16, 24, 32, 48, 64], dtype=float)


def sweep(
    lam: float, sigma: float, kappa: float, *, noise: float = 0.03, seed: int = 0
) -> pd.DataFrame:
    """A closed-loop sweep from known USL parameters with multiplicative noise; latency by
    Little's law, p99 as a multiple of it."""
    rng = np.random.default_rng(seed)
    x = usl(STEPS, lam, sigma, kappa) * (1 + rng.normal(0, noise, len(STEPS)))
    mean_ms = 1000 * STEPS / x
    return pd.DataFrame(
        {
            "concurrency": STEPS,
            "throughput_rps": x,
            "p50_ms": mean_ms * 0.9,
            "p95_ms": mean_ms * 2,
            "p99_ms": mean_ms * 3,
            "error_rate": 0.0,
        }
    )


@pytest.mark.parametrize(
    ("lam", "sigma", "kappa", "seed"),
    [
        (100.0, 0.05, 0.0005, 1),
        (250.0, 0.02, 0.001, 2),
        (40.0, 0.15, 0.0002, 3),
        (500.0, 0.01, 0.0, 4),
    ],
)
def test_the_usl_fit_recovers_sigma_kappa_and_max_throughput(
    lam: float, sigma: float, kappa: float, seed: int
) -> None:
    fit = fit_usl(
        *sweep(lam, sigma, kappa, seed=seed)[["concurrency", "throughput_rps"]].T.to_numpy()
    )
    true_peak = math.sqrt((1 - sigma) / kappa) if kappa else math.inf
    true_max = (
        float(usl(np.array([min(true_peak, 1e9)]), lam, sigma, kappa)[0]) if kappa else lam / sigma
    )
    assert fit.sigma == pytest.approx(sigma, abs=0.02)
    assert fit.kappa == pytest.approx(kappa, abs=0.0005)
    assert fit.max_throughput == pytest.approx(true_max, rel=0.2)
    assert fit.mape < 0.06
    assert fit.r2 > 0.95
    assert 1 <= fit.knee <= fit.peak_concurrency


def test_the_fit_reports_its_error_instead_of_hiding_it() -> None:
    data = sweep(100.0, 0.05, 0.0005, noise=0.25, seed=9)
    plan = capacity_plan(data)
    assert plan.fit.mape > 0.1
    assert any("fits the sweep poorly" in n for n in plan.notes)


def test_fewer_than_three_steps_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least 3 load steps"):
        fit_usl([1, 2], [10, 19])


def test_littles_law_holds_on_a_closed_loop_without_think_time() -> None:
    data = sweep(100.0, 0.05, 0.0005, noise=0.0)
    data["p50_ms"] = 1000 * data["concurrency"] / data["throughput_rps"]
    assert littles_law(data)["ratio"].to_numpy() == pytest.approx(1.0)


def test_the_plan_gives_throughput_within_the_slo_and_replicas_for_a_target() -> None:
    data = sweep(100.0, 0.05, 0.0005, noise=0.0)
    plan = capacity_plan(data, target_rps=2000.0, slo_p99_ms=200.0)
    assert plan.slo_concurrency is not None
    assert plan.slo_throughput is not None
    # p99 = 3 × N / X(N) crosses 200 ms between two steps; the interpolated N sits there.
    p99_at = 3000 * plan.slo_concurrency / plan.fit.throughput(plan.slo_concurrency)
    assert p99_at == pytest.approx(200.0, rel=0.15)
    assert plan.replicas == math.ceil(2000.0 / (plan.slo_throughput * 0.8))


def test_replicas_needed_rounds_up_with_headroom_and_rejects_nonsense() -> None:
    assert replicas_needed(500, 100) == 7  # 500 / (100 × 0.8) = 6.25
    assert replicas_needed(500, 100, headroom=1.0) == 5
    with pytest.raises(ValueError, match="headroom must be within"):
        replicas_needed(500, 100, headroom=0.0)
    with pytest.raises(ValueError, match="must be positive"):
        replicas_needed(500, 0)


def _red(rps: float) -> pd.DataFrame:
    ts = pd.date_range("2026-01-01", periods=12, freq="10s", tz="UTC")
    return pd.DataFrame(
        {
            "ts": ts,
            "route": "GET /items/{id}",
            "requests": int(rps * 10),
            "errors": 0,
            "mean_ms": 5.0,
            "p50_ms": 4.0,
            "p95_ms": 9.0,
            "p99_ms": 12.0,
        }
    )


def test_live_traffic_near_capacity_is_saturation_and_light_traffic_is_not() -> None:
    data = sweep(100.0, 0.05, 0.0005, noise=0.0)
    capacity = fit_usl(data["concurrency"], data["throughput_rps"]).max_throughput
    [busy] = detect_saturation(_red(0.95 * capacity), data)
    assert busy.kind == "saturation"
    assert busy.is_alarm
    [light] = detect_saturation(_red(0.3 * capacity), data)
    assert light.severity == "info"
