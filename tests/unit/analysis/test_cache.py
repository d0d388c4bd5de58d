"""Cache: hit ratio, hit vs miss latency, what-if, outage and inefficiency."""

from __future__ import annotations

import pandas as pd
import pytest

from dashboard.analysis.cache import (
    detect_cache_inefficiency,
    detect_cache_outage,
    hit_ratio_series,
    latency_by_outcome,
    request_outcomes,
    what_if_latency,
)
from tests.support.synthetic import Fault
from tests.unit.analysis.helpers import Prepared, prepare


@pytest.fixture(scope="module")
def healthy() -> Prepared:
    return prepare(seed=31)


def test_the_hit_ratio_series_shows_a_warm_cache(healthy: Prepared) -> None:
    assert healthy.inputs.cache is not None
    series = hit_ratio_series(healthy.inputs.cache)
    assert series["hit_ratio"].mean() == pytest.approx(0.62, abs=0.07)
    assert (series["error_ratio"] == 0).all()


def test_hits_are_faster_than_misses(healthy: Prepared) -> None:
    table = latency_by_outcome(request_outcomes(healthy.typical)).set_index(["route", "outcome"])
    route = "GET /items/{id}"
    assert table.loc[(route, "hit"), "p50_ms"] < table.loc[(route, "miss"), "p50_ms"]


def test_the_what_if_p95_falls_as_the_hit_ratio_rises(healthy: Prepared) -> None:
    outcomes = request_outcomes(healthy.typical)
    p95 = [what_if_latency(outcomes, "GET /items/{id}", x) for x in (0.2, 0.5, 0.8, 0.99)]
    assert p95 == sorted(p95, reverse=True)
    assert p95[0] > p95[-1]


def test_a_healthy_cache_raises_nothing(healthy: Prepared) -> None:
    args = (healthy.inputs.cache, healthy.typical, healthy.slow)
    assert detect_cache_outage(*args) == []
    assert not [f for f in detect_cache_inefficiency(*args) if f.is_alarm]


def test_a_cache_outage_is_found_with_its_error_share() -> None:
    p = prepare(Fault("cache_outage"), seed=32, fault_start=0.5)
    [outage] = detect_cache_outage(p.inputs.cache, p.typical, p.slow)
    assert outage.subject == {"app.cache.name": "items"}
    assert outage.is_alarm
    assert outage.evidence.aggregate["error_share"] == pytest.approx(0.5, abs=0.1)
    # the healthy first half taught the reference hit ratio
    assert outage.evidence.aggregate["reference_hit_ratio"] == pytest.approx(0.62, abs=0.08)


def test_a_hit_ratio_drop_is_an_inefficiency_with_a_what_if() -> None:
    p = prepare(Fault("cache_ttl", {"seconds": 0.3}), seed=33, fault_start=0.4, duration_s=30.0)
    [finding] = detect_cache_inefficiency(p.inputs.cache, p.typical, p.slow)
    assert finding.is_alarm
    agg = finding.evidence.aggregate
    assert agg["hit_ratio_before"] - agg["hit_ratio_now"] >= 0.1
    assert "GET /items/{id}" in agg["what_if"]


def test_a_low_ratio_all_window_long_alarms_only_against_an_expected_ratio() -> None:
    """With no earlier, better period to compare with, a low ratio is not an alarm unless
    the operator said what to expect (documented blind spot)."""
    p = prepare(Fault("cache_ttl", {"seconds": 0.2}), seed=34, ttl_s=0.2)
    args = (p.inputs.cache, p.typical, p.slow)
    assert not [f for f in detect_cache_inefficiency(*args) if f.is_alarm]
    [expected] = detect_cache_inefficiency(*args, expected_hit_ratio=0.8)
    assert expected.is_alarm


def _counts(ratios: list[tuple[int, int]]) -> pd.DataFrame:
    ts = pd.date_range("2026-01-01", periods=len(ratios), freq="1s", tz="UTC")
    return pd.DataFrame(
        {
            "ts": ts,
            "cache": "items",
            "hits": [h for h, _ in ratios],
            "misses": [m for _, m in ratios],
            "errors": 0,
        }
    )


def test_the_newest_state_reaches_back_past_buckets_still_filling() -> None:
    """The last bucket holds a handful of lookups (telemetry still arriving): "now" reaches
    back until it holds enough to compare, and the fall is found."""
    p = prepare(Fault("cache_ttl", {"seconds": 0.3}), seed=33, fault_start=0.4, duration_s=30.0)
    counts = _counts([(24, 16)] * 6 + [(10, 30)] * 10 + [(1, 3)])
    [finding] = detect_cache_inefficiency(counts, p.typical, p.slow)
    assert finding.evidence.aggregate["hit_ratio_now"] == pytest.approx(0.25, abs=0.02)
    assert finding.evidence.aggregate["hit_ratio_before"] == pytest.approx(0.6)


def test_an_outage_of_most_lookups_is_an_alarm_even_where_it_costs_little() -> None:
    """Cache misses cost almost nothing when the shards are fast, but a cache failing every
    lookup has left every read to the shards."""
    p = prepare(seed=35)
    counts = _counts([(0, 0)] * 1).assign(errors=400)
    [outage] = detect_cache_outage(counts, p.typical, [])  # no slow request to speed up
    assert outage.impact.score == 0.0
    assert outage.severity == "notable"
    few = _counts([(380, 0)]).assign(errors=20)  # 5 % failing: significant, small
    [minor] = detect_cache_outage(few, p.typical, [])
    assert minor.severity == "info"
