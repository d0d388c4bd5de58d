"""Queueing vs working: pool wait per shard, and the blocked event loop."""

from __future__ import annotations

import pytest

from dashboard.analysis.profiles import profile
from dashboard.analysis.queueing import (
    detect_event_loop_blocking,
    detect_pool_contention,
    loop_time_ms,
    pool_table,
)
from tests.support.synthetic import Fault
from tests.unit.analysis.helpers import Prepared, prepare, server, span, trace


@pytest.fixture(scope="module")
def healthy() -> Prepared:
    return prepare(seed=41)


def test_healthy_pools_barely_wait(healthy: Prepared) -> None:
    table = pool_table(healthy.spans)
    assert (table["wait_share"] < 0.05).all()
    assert not [f for f in detect_pool_contention(healthy.spans, healthy.slow) if f.is_alarm]


def test_a_one_connection_pool_under_load_is_contention_on_that_shard() -> None:
    p = prepare(Fault("pool_size", {"shard": 1, "size": 1}), seed=42, rate_rps=250.0)
    [found] = [f for f in detect_pool_contention(p.spans, p.slow) if f.is_alarm]
    assert found.subject == {"app.shard.id": "1"}
    table = pool_table(p.spans)
    assert table.loc["1", "wait_share"] > 3 * table.drop(index="1")["wait_share"].max()


def test_loop_time_is_the_servers_own_time_not_the_callers() -> None:
    t = trace(
        span("GET", 0, 30, sid="c", service="narrows-load"),
        server("GET /items/{id}", 10, 28, parent="c"),
        span("cache.get items", 12, 14, "root", attrs={"app.cache.name": "items"}),
    )
    # server: 10..12 and 14..28 own time; the client's 0..10 may be the load generator's lag
    assert loop_time_ms(profile(t)) == pytest.approx(16.0)


def test_a_healthy_loop_is_not_blocked(healthy: Prepared) -> None:
    assert not [f for f in detect_event_loop_blocking(healthy.typical, healthy.slow) if f.is_alarm]


def test_cpu_burn_on_one_route_blocks_the_loop_and_names_that_route() -> None:
    p = prepare(Fault("cpu_burn", {"route": "/orders", "ms": 20.0}), seed=43)
    [found] = detect_event_loop_blocking(p.typical, p.slow)
    assert found.is_alarm
    assert found.subject == {
        "service.name": "demo",
        "http.request.method": "POST",
        "http.route": "/orders",
    }
    assert found.evidence.aggregate["culprit_own_ms"] >= 20.0
