"""SLO burn: multi-window burn rates, alerts and time to exhaustion."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from dashboard.analysis.inputs import SloObjective
from dashboard.analysis.slo import burn_rates, detect_slo_burn, time_to_exhaustion


def red(
    minutes: int, error_ratio: float, *, late_only: bool = False, over_slo: float = 0.0
) -> pd.DataFrame:
    ts = pd.date_range("2026-01-01", periods=minutes, freq="1min", tz="UTC")
    errors = [
        0 if late_only and i < minutes - 5 else round(1000 * error_ratio) for i in range(minutes)
    ]
    return pd.DataFrame(
        {
            "ts": ts,
            "route": "GET /items/{id}",
            "requests": 1000,
            "errors": errors,
            "mean_ms": 5.0,
            "p50_ms": 4.0,
            "p95_ms": 9.0,
            "p99_ms": 12.0,
            "over_slo": round(1000 * over_slo),
        }
    )


def test_the_burn_rate_is_the_bad_ratio_over_the_budget() -> None:
    table = burn_rates(red(60, 0.01), SloObjective(availability=0.999), [300, 3600])
    assert table["burn_rate"].to_numpy() == pytest.approx([10.0, 10.0])
    assert table["covered_s"].to_numpy() == pytest.approx([300.0, 3600.0])


def test_time_to_exhaustion_is_the_period_over_the_burn_rate() -> None:
    slo = SloObjective(period_s=30 * 86400)
    assert time_to_exhaustion(10.0, slo) == pytest.approx(3 * 86400)
    assert time_to_exhaustion(10.0, slo, remaining=0.5) == pytest.approx(1.5 * 86400)
    assert math.isinf(time_to_exhaustion(0.0, slo))


def test_a_fast_burn_in_both_windows_is_critical() -> None:
    [f] = detect_slo_burn(red(60, 0.02), SloObjective(availability=0.999))
    assert (f.kind, f.severity) == ("slo_burn", "critical")
    assert f.impact.value == pytest.approx(0.02)
    assert "fast burn (1 h / 5 m)" in f.evidence.aggregate["alerts_firing"]


def test_no_errors_means_no_finding() -> None:
    assert detect_slo_burn(red(60, 0.0), SloObjective()) == []


def test_windows_longer_than_the_data_are_cut_and_say_so() -> None:
    [f] = detect_slo_burn(red(10, 0.05), SloObjective(availability=0.999))
    assert f.is_alarm
    assert any("covers only 600 s" in n for n in f.evidence.notes)


def test_slow_requests_count_against_a_latency_objective() -> None:
    slo = SloObjective(availability=0.99, latency_ms=100.0)
    [f] = detect_slo_burn(red(60, 0.0, over_slo=0.2), slo)
    assert f.severity == "critical"
    assert f.impact.value == pytest.approx(0.2)


def test_a_slow_burn_needs_data_spanning_its_short_window() -> None:
    """0.5 % bad burns the budget 5× too fast: a slow burn (ticket), which minutes of data
    cannot show; with the 2 h short window covered it is notable."""
    slo = SloObjective(availability=0.999)
    [f] = detect_slo_burn(red(10, 0.005), slo)
    assert not f.is_alarm
    [f] = detect_slo_burn(red(3 * 60, 0.005), slo)
    assert f.severity == "notable"


def test_a_bad_ratio_over_the_threshold_by_chance_is_not_a_burn() -> None:
    """1 % bad is over the 6 h / 30 m pair's threshold (0.6 %); in 1000 requests (10 bad
    where 6 are allowed) that is within chance, in 5000 (50 bad) it is not."""
    slo = SloObjective(availability=0.999)
    few = red(10, 0.0).assign(requests=200, errors=2)
    assert burn_rates(few, slo, [300])["burn_rate"].iloc[0] == pytest.approx(10.0)
    assert not [f for f in detect_slo_burn(few, slo) if f.is_alarm]
    [f] = detect_slo_burn(red(10, 0.01), slo)
    assert f.severity == "critical"
