"""Ground truth on synthetic traffic: with one fault switched on, ``diagnose`` names the
right kind and subject first; with none, nothing is notable or critical.

The traffic is the demo's shape (tests/support/synthetic.py); parameters (which shard, how
much delay, which route, the seed) vary, so the engine cannot lean on one shard number
or one magnitude.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.analysis.diagnose import Diagnosis
from dashboard.analysis.findings import Finding
from tests.support.synthetic import Fault
from tests.unit.analysis.conftest import Run
from tests.unit.analysis.helpers import run_scenario


def top(d: Diagnosis) -> Finding:
    assert d.findings, "no findings at all"
    first = d.findings[0]
    assert first.is_alarm, f"the top finding is only info: {first.ref}: {first.summary}"
    assert first.evidence.explained_by is None
    return first


def describe(d: Diagnosis) -> str:
    return "\n".join(f"{f.severity} {f.ref} score={f.impact.score:.2f}" for f in d.findings[:5])


@pytest.mark.parametrize(
    ("shard", "delay_ms", "seed"), [(0, 6.0, 1), (2, 25.0, 2), (3, 80.0, 3), (1, 40.0, 4)]
)
def test_slow_shard_is_the_top_finding(run: Run, shard: int, delay_ms: float, seed: int) -> None:
    d = run(
        Fault("slow_shard", {"shard": shard, "delay_ms": delay_ms, "jitter_ms": delay_ms / 4}),
        seed=seed,
    )
    first = top(d)
    assert (first.kind, first.subject) == ("slow_shard", {"app.shard.id": str(shard)}), describe(d)


@settings(max_examples=4, deadline=None, derandomize=True)
@given(shard=st.integers(0, 3), delay_ms=st.floats(5.0, 120.0), seed=st.integers(0, 10_000))
def test_slow_shard_found_whatever_shard_and_delay(shard: int, delay_ms: float, seed: int) -> None:
    d = run_scenario(Fault("slow_shard", {"shard": shard, "delay_ms": delay_ms}), seed=seed)
    first = top(d)
    assert (first.kind, first.subject) == ("slow_shard", {"app.shard.id": str(shard)}), describe(d)


def test_slow_shard_outranks_the_pool_wait_and_slow_routes_it_causes(run: Run) -> None:
    d = run(Fault("slow_shard", {"shard": 1, "delay_ms": 60.0, "jitter_ms": 20.0}), seed=5)
    first = top(d)
    assert first.ref == "slow_shard {app.shard.id=1}", describe(d)
    pool = next(f for f in d.findings if f.kind == "pool_contention")
    assert pool.is_alarm
    assert pool.evidence.explained_by == first.ref
    assert pool.ref in first.evidence.explains
    symptoms = [f for f in d.findings if f.kind == "slow_operation"]
    assert symptoms
    assert all(
        f.evidence.explained_by == first.ref
        for f in symptoms
        if f.subject.get("app.shard.id") == "1"
    )


@pytest.mark.parametrize(("shard", "error_rate"), [(1, 0.05), (3, 0.3)])
def test_failing_shard_is_the_top_finding_and_explains_the_slo_burn(
    run: Run, shard: int, error_rate: float
) -> None:
    d = run(Fault("failing_shard", {"shard": shard, "error_rate": error_rate}), seed=shard)
    first = top(d)
    assert (first.kind, first.subject) == ("failing_shard", {"app.shard.id": str(shard)}), describe(
        d
    )
    assert first.impact.unit == "error_share"
    assert first.impact.value > 0
    burn = [f for f in d.findings if f.kind == "slo_burn"]
    assert burn
    assert burn[0].evidence.explained_by == first.ref


@pytest.mark.parametrize("fault_start", [0.0, 0.4])
def test_cache_outage_is_the_top_finding(run: Run, fault_start: float) -> None:
    d = run(Fault("cache_outage"), seed=7, fault_start=fault_start)
    first = top(d)
    assert (first.kind, first.subject) == ("cache_outage", {"app.cache.name": "items"}), describe(d)


@pytest.mark.parametrize(("seconds", "seed"), [(0.3, 8), (1.0, 9)])
def test_short_ttl_is_found_as_cache_inefficiency(run: Run, seconds: float, seed: int) -> None:
    # A shorter TTL applies to new entries: the ratio falls as the old ones drain, so the
    # fault needs a while (here 18 s) to show.
    d = run(Fault("cache_ttl", {"seconds": seconds}), seed=seed, fault_start=0.4, duration_s=30.0)
    first = top(d)
    assert (first.kind, first.subject) == ("cache_inefficiency", {"app.cache.name": "items"}), (
        describe(d)
    )


def test_sequential_fanout_is_found_on_multi_get_and_search(run: Run) -> None:
    d = run(Fault("sequential_fanout"), seed=10)
    first = top(d)
    assert first.kind == "sequential_fanout", describe(d)
    alarms = {
        f.subject["http.route"] for f in d.findings if f.kind == "sequential_fanout" and f.is_alarm
    }
    assert {"/search", "/items"} <= alarms, describe(d)


@pytest.mark.parametrize(("shard", "size", "rate"), [(0, 1, 300.0), (3, 1, 250.0), (2, 1, 150.0)])
def test_small_pool_is_found_as_pool_contention(
    run: Run, shard: int, size: int, rate: float
) -> None:
    d = run(Fault("pool_size", {"shard": shard, "size": size}), seed=11 + shard, rate_rps=rate)
    first = top(d)
    assert (first.kind, first.subject) == ("pool_contention", {"app.shard.id": str(shard)}), (
        describe(d)
    )


@pytest.mark.parametrize(
    ("route", "ms"), [("/search", 15.0), ("/orders", 25.0), ("/items/{id}", 6.0)]
)
def test_cpu_burn_is_found_as_event_loop_blocking_with_its_route(
    run: Run, route: str, ms: float
) -> None:
    d = run(Fault("cpu_burn", {"route": route, "ms": ms}), seed=12)
    first = top(d)
    assert first.kind == "event_loop_blocking", describe(d)
    assert first.subject.get("http.route") == route, describe(d)


def test_cpu_burn_on_every_route_is_event_loop_blocking_of_the_service(run: Run) -> None:
    """The demo's default: route "*" burns on every request, so no route stands out."""
    d = run(Fault("cpu_burn", {"route": "*", "ms": 5.0}), seed=14, rate_rps=60.0)
    first = top(d)
    assert (first.kind, first.subject) == ("event_loop_blocking", {"service.name": "demo"}), (
        describe(d)
    )
    assert first.evidence.aggregate["loop_busy_share"] >= 0.25


@pytest.mark.parametrize("shard", [0, 2])
def test_hot_keys_are_found_as_a_hot_shard(run: Run, shard: int) -> None:
    d = run(Fault("hot_keys", {"shard": shard, "share": 0.8, "keys": 5}), seed=13 + shard)
    first = top(d)
    assert (first.kind, first.subject) == ("hot_shard", {"app.shard.id": str(shard)}), describe(d)


@pytest.mark.parametrize("seed", range(8))
def test_a_healthy_system_raises_no_alarm(run: Run, seed: int) -> None:
    d = run(seed=100 + seed, client_spans=seed % 2 == 0, rate_rps=100.0 + 25 * (seed % 5))
    alarms = [f for f in d.findings if f.is_alarm]
    assert not alarms, describe(d)
    assert not [s for s in d.skipped if "failed" in s]
