"""Shards: fair share, hot / slow / failing shard detection with tests and effect sizes."""

from __future__ import annotations

import pandas as pd
import pytest

from dashboard.analysis.shards import (
    detect_failing_shards,
    detect_hot_shards,
    detect_slow_shards,
    shard_table,
)
from tests.support.synthetic import Fault
from tests.unit.analysis.helpers import Prepared, prepare


def counts(*queries: int, errors: tuple[int, ...] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": pd.Timestamp("2026-01-01", tz="UTC"),
            "shard_id": [str(i) for i in range(len(queries))],
            "queries": queries,
            "errors": errors or [0] * len(queries),
            "mean_ms": 2.0,
            "p95_ms": 4.0,
            "pool_wait_mean_ms": 0.0,
        }
    )


@pytest.fixture(scope="module")
def healthy() -> Prepared:
    return prepare(seed=21)


def test_shares_add_up_and_the_fair_share_is_one_over_n(healthy: Prepared) -> None:
    table = shard_table(healthy.spans, healthy.inputs.shards)
    assert table["share"].sum() == pytest.approx(1.0)
    assert set(table["fair_share"]) == {0.25}
    assert (table["query_p50_ms"] > 0).all()


def test_an_even_load_raises_no_hot_shard() -> None:
    findings = detect_hot_shards(shard_table(pd.DataFrame(), counts(1000, 1010, 990, 1005)))
    assert findings == []


def test_twice_the_fair_share_is_a_hot_shard() -> None:
    [hot] = detect_hot_shards(shard_table(pd.DataFrame(), counts(1000, 1000, 3000, 1000)))
    assert (hot.kind, hot.subject, hot.severity) == ("hot_shard", {"app.shard.id": "2"}, "critical")
    assert hot.impact.value == pytest.approx(2.0)


def test_a_significant_but_small_skew_stays_info() -> None:
    """1.3× with 40 000 queries is far beyond chance, and still no reason to page anyone."""
    [hot] = detect_hot_shards(shard_table(pd.DataFrame(), counts(9000, 9000, 13000, 9000)))
    assert hot.severity == "info"
    assert hot.evidence.aggregate["p_holm"] < 1e-9


def test_healthy_shards_are_not_slow(healthy: Prepared) -> None:
    assert not [f for f in detect_slow_shards(healthy.spans, healthy.slow) if f.is_alarm]


@pytest.mark.parametrize(("shard", "delay_ms"), [(0, 5.0), (3, 30.0)])
def test_a_slow_shard_is_found_with_its_ratio_and_evidence(shard: int, delay_ms: float) -> None:
    p = prepare(Fault("slow_shard", {"shard": shard, "delay_ms": delay_ms}), seed=22)
    [slow] = [f for f in detect_slow_shards(p.spans, p.slow) if f.is_alarm]
    assert slow.subject == {"app.shard.id": str(shard)}
    assert slow.evidence.aggregate["ratio"] > 1.5
    assert slow.evidence.trace_ids
    assert slow.impact.unit == "ms"
    assert slow.impact.value > delay_ms / 2


def test_a_shard_serving_more_cheap_queries_is_not_called_fast_or_slow() -> None:
    """Shard 3 gets the hot keys' cheap lookups; query times are compared within each
    route and operation, so the mix does not make another shard look slow."""
    p = prepare(Fault("hot_keys", {"shard": 3, "share": 0.8, "keys": 5}), seed=23)
    assert not [f for f in detect_slow_shards(p.spans, p.slow) if f.is_alarm]


def test_a_shard_failing_significantly_is_an_alarm_even_if_the_sample_shows_no_failure(
    healthy: Prepared,
) -> None:
    """4 % of shard 1's queries fail in the complete counts; the trace sample happens to hold
    no failed request (a low rate, a short window): the share is 0, the alarm stands."""
    table = shard_table(healthy.spans, counts(1000, 1000, 1000, 1000, errors=(1, 40, 0, 1)))
    [failing] = [f for f in detect_failing_shards(table, healthy.typical) if f.is_alarm]
    assert failing.subject == {"app.shard.id": "1"}
    assert failing.severity == "notable"
    assert failing.impact.value == 0.0


def test_a_few_failures_no_more_often_than_on_other_shards_stay_info(healthy: Prepared) -> None:
    table = shard_table(healthy.spans, counts(1000, 1000, 1000, 1000, errors=(2, 3, 2, 2)))
    assert not [f for f in detect_failing_shards(table, healthy.typical) if f.is_alarm]


def test_a_failing_shard_is_found_and_healthy_ones_are_not(healthy: Prepared) -> None:
    assert (
        detect_failing_shards(shard_table(healthy.spans, healthy.inputs.shards), healthy.typical)
        == []
    )
    p = prepare(Fault("failing_shard", {"shard": 1, "error_rate": 0.1}), seed=24)
    [failing] = detect_failing_shards(shard_table(p.spans, p.inputs.shards), p.typical)
    assert failing.subject == {"app.shard.id": "1"}
    assert failing.is_alarm
    assert 0 < failing.impact.value <= 1
    assert failing.evidence.trace_ids
