"""Queueing vs working: pool wait per shard, and the blocked event loop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard.analysis.profiles import Profile, profile
from dashboard.analysis.queueing import (
    _complete_wait_share,
    detect_event_loop_blocking,
    detect_pool_contention,
    longest_own_ms,
    loop_busy_share,
    loop_time_ms,
    pool_table,
)
from dashboard.sources.model import Trace
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


def test_the_block_is_the_longest_stretch_without_a_child() -> None:
    t = trace(
        server("POST /orders", 0, 30),
        span("SELECT", 2, 10, "root", attrs={"app.shard.id": "1"}),
        span("UPDATE", 8, 12, "root", attrs={"app.shard.id": "1"}),
        span("COMMIT", 17, 26, "root", attrs={"app.shard.id": "1"}),
    )
    # own time 0..2, 12..17, 26..30 = 11 ms in all, the longest stretch 5 ms
    assert longest_own_ms(profile(t)) == pytest.approx(5.0)


def _request(route: str, i: int, gaps: int, gap_ms: float, extra_ms: float = 0.0) -> Trace:
    """A request whose server span alternates ``gap_ms`` of own time with 1 ms children;
    ``extra_ms`` lengthens its first gap (time waiting for the loop)."""
    t0 = i * 1000.0
    spans = []
    cursor = t0 + gap_ms + extra_ms
    for k in range(gaps):
        spans.append(span("SELECT", cursor, cursor + 1, "root", attrs={"app.shard.id": str(k % 4)}))
        cursor += 1 + gap_ms
    return trace(server(route, t0, cursor), *spans, trace_id=f"{route}-{i}-{extra_ms}")


def test_a_handler_of_many_short_steps_is_no_culprit_and_host_waits_stay_info() -> None:
    """Checkout-like requests have 3x the own time of the others, but spread over short
    gaps; slow requests wait in the loop with no code holding it (a busy host)."""
    routes = {"POST /orders": 12, "GET /items/{id}": 2, "GET /search": 2, "PUT /items/{id}": 2}
    typical = [profile(_request(r, i, gaps, 0.5)) for r, gaps in routes.items() for i in range(40)]
    slow = [
        profile(_request(r, 100 + i, gaps, 0.5, extra_ms=20.0))
        for r, gaps in routes.items()
        for i in range(20)
    ]
    [found] = detect_event_loop_blocking(typical, slow)
    assert not found.is_alarm
    assert found.evidence.aggregate["culprit"] == ""
    assert any("not getting a CPU" in n for n in found.evidence.notes)


def test_the_same_waits_with_one_route_holding_the_loop_are_blocking_by_that_route() -> None:
    routes = {"POST /orders": 12, "GET /items/{id}": 2, "GET /search": 2, "PUT /items/{id}": 2}

    def gap(route: str) -> float:
        return 8.0 if route == "GET /search" else 0.5

    typical = [
        profile(_request(r, i, gaps, gap(r))) for r, gaps in routes.items() for i in range(40)
    ]
    slow = [
        profile(_request(r, 100 + i, gaps, gap(r), extra_ms=20.0))
        for r, gaps in routes.items()
        for i in range(20)
    ]
    [found] = detect_event_loop_blocking(typical, slow)
    assert found.is_alarm
    assert found.subject["http.route"] == "/search"


ROUTES = {"POST /orders": 12, "GET /items/{id}": 2, "GET /search": 2, "PUT /items/{id}": 2}


def _burning_since(onset: int, burn_ms: float = 8.0) -> tuple[list[Profile], list[Profile]]:
    """40 typical and 20 slow requests per route, in time order; from request ``onset`` on,
    GET /search holds the loop ``burn_ms`` at a stretch; the slow ones wait for the loop."""

    def gap(route: str, i: int) -> float:
        return burn_ms if route == "GET /search" and i >= onset else 0.5

    typical = [
        profile(_request(r, i, gaps, gap(r, i))) for r, gaps in ROUTES.items() for i in range(40)
    ]
    slow = [
        profile(_request(r, 40 + i, gaps, gap(r, 40), extra_ms=20.0))
        for r, gaps in ROUTES.items()
        for i in range(20)
    ]
    return typical, slow


def test_a_route_that_began_burning_cpu_within_the_window_is_still_the_culprit() -> None:
    """The window reaches back before the burn began (15 of 40 requests, 38 %, healthy):
    the low quantile over the whole window would be a healthy request's."""
    typical, slow = _burning_since(onset=15)
    [found] = detect_event_loop_blocking(typical, slow)
    assert found.is_alarm
    assert found.subject["http.route"] == "/search"
    assert found.evidence.aggregate["culprit_own_ms"] >= 8.0


def test_the_loop_busy_share_counts_a_burn_that_began_within_the_window_at_its_level() -> None:
    """GET /search holds 24 ms of own time per request from request 15 of 40 on (1.5 ms
    before): at 10 req/s that is 24 % of the loop, not the 1.5 % of a healthy request
    that the whole window's low quantile would give."""
    typical, _ = _burning_since(onset=15)
    stamps = pd.date_range("2026-11-26", periods=10, freq="1s")
    red = pd.DataFrame([{"ts": t, "route": r, "requests": 10} for t in stamps for r in ROUTES])
    busy, by_route = loop_busy_share(typical, red)
    assert by_route["GET /search"] == pytest.approx(10 * 24.0 / 1000)
    assert by_route["GET /items/{id}"] == pytest.approx(10 * 1.5 / 1000)
    assert busy == pytest.approx(sum(by_route.values()))


def test_blocks_only_in_the_last_fifth_of_the_window_name_no_culprit() -> None:
    """Fewer than a third of the route's requests: too few to call every request's block
    (a busy spell of the host looks like this too)."""
    typical, slow = _burning_since(onset=32)
    [found] = detect_event_loop_blocking(typical, slow)
    assert found.evidence.aggregate["culprit"] == ""
    assert found.evidence.aggregate["block_ms_floor_by_route"]["GET /search"] < 1.0


def test_every_well_sampled_route_burning_blocks_the_loop_whatever_a_rare_route_shows() -> None:
    """Three routes with 40 sampled requests hold the loop 4 ms each; checkout, with 10
    sampled requests all from before the burn, shows 0.5 ms: too few to say it does not."""
    busy = {"GET /items/{id}": 2, "GET /search": 2, "PUT /items/{id}": 2}
    typical = [profile(_request(r, i, g, 4.0)) for r, g in busy.items() for i in range(40)]
    typical += [profile(_request("POST /orders", i, 12, 0.5)) for i in range(10)]
    slow = [
        profile(_request(r, 100 + i, g, 4.0, extra_ms=20.0))
        for r, g in busy.items()
        for i in range(20)
    ]
    [found] = detect_event_loop_blocking(typical, slow)
    assert found.is_alarm
    assert found.evidence.aggregate["culprit"] == ""
    assert found.evidence.aggregate["block_ms_floor_by_route"]["POST /orders"] < 1.0


def test_complete_pool_wait_counts_only_buckets_whose_wait_is_known() -> None:
    """A histogram scraped every 5 s fills one 1-s bucket in five; the empty ones are
    unknown, not "no wait"."""
    ts = pd.date_range("2026-01-01", periods=10, freq="1s", tz="UTC")
    frame = pd.DataFrame(
        {
            "ts": list(ts) * 2,
            "shard_id": ["0"] * 10 + ["1"] * 10,
            "queries": 20,
            "errors": 0,
            "mean_ms": 10.0,
            "p95_ms": 20.0,
            "pool_wait_mean_ms": [4.0 if i % 5 == 0 else np.nan for i in range(10)]
            + [0.1 if i % 5 == 0 else np.nan for i in range(10)],
        }
    )
    share = _complete_wait_share(frame)
    assert share["0"] == pytest.approx(0.4)
    assert share["1"] == pytest.approx(0.01)
