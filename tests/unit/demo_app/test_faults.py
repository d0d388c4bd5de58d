"""Fault switches as state: validation with clear reasons, seeded behaviour, full clearing."""

from __future__ import annotations

import pytest

from demo_app.exceptions import InvalidFaultParams, UnknownFault
from demo_app.faults import FAULTS, Faults, parse_fault_arg

ROUTES = ("/items/{item_id}", "/items", "/search", "/orders")


def _faults(**kwargs: int) -> Faults:
    return Faults(shards=4, routes=ROUTES, seed=kwargs.get("seed", 1), item_count=1000)


def test_the_issue_lists_exactly_these_faults() -> None:
    assert set(FAULTS) == {
        "slow_shard",
        "failing_shard",
        "cache_outage",
        "cache_ttl",
        "hot_keys",
        "sequential_fanout",
        "pool_size",
        "cpu_burn",
    }


@pytest.mark.parametrize(
    ("name", "raw", "error", "reason"),
    [
        ("nope", {}, UnknownFault, "known faults: slow_shard"),
        ("slow_shard", {}, InvalidFaultParams, "needs shard"),
        ("slow_shard", {"shard": 4}, InvalidFaultParams, "out of range 0 … 3"),
        ("slow_shard", {"shard": -1}, InvalidFaultParams, "out of range"),
        ("slow_shard", {"shard": 1, "delay": 5}, InvalidFaultParams, "no parameter delay"),
        ("slow_shard", {"shard": 1, "delay_ms": -5}, InvalidFaultParams, "out of range"),
        ("slow_shard", {"shard": 1, "delay_ms": 10**9}, InvalidFaultParams, "out of range"),
        ("slow_shard", {"shard": "two"}, InvalidFaultParams, "must be an int"),
        ("slow_shard", {"shard": 1.5}, InvalidFaultParams, "must be an int"),
        ("slow_shard", {"shard": True}, InvalidFaultParams, "not a boolean"),
        ("slow_shard", {"shard": 1, "delay_ms": float("nan")}, InvalidFaultParams, "range"),
        ("slow_shard", {"shard": [1]}, InvalidFaultParams, "must be an int"),
        ("failing_shard", {"shard": 0, "error_rate": 1.5}, InvalidFaultParams, "out of range"),
        ("cache_ttl", {"seconds": 0}, InvalidFaultParams, "out of range"),
        ("hot_keys", {"share": 2}, InvalidFaultParams, "out of range"),
        ("hot_keys", {"keys": 0}, InvalidFaultParams, "out of range"),
        ("pool_size", {"shard": 0, "size": 0}, InvalidFaultParams, "out of range"),
        ("cpu_burn", {"route": "/nope"}, InvalidFaultParams, "not a route"),
        ("cpu_burn", {"ms": 5000}, InvalidFaultParams, "out of range"),
        ("cache_outage", {"x": 1}, InvalidFaultParams, "no parameter x"),
    ],
)
def test_bad_fault_requests_are_refused_with_a_reason(
    name: str, raw: dict[str, object], error: type[Exception], reason: str
) -> None:
    faults = _faults()
    with pytest.raises(error, match=reason):
        faults.set(name, raw)
    assert faults.params(name) is None


def test_defaults_are_filled_in_and_numeric_strings_accepted() -> None:
    faults = _faults()
    params = faults.set("slow_shard", {"shard": "2"})
    assert params == {"shard": 2, "delay_ms": 100.0, "jitter_ms": 0.0, "seed": 0}


def test_slow_shard_delays_only_its_shard_and_jitter_is_seeded() -> None:
    a, b = _faults(), _faults()
    for f in (a, b):
        f.set("slow_shard", {"shard": 1, "delay_ms": 50, "jitter_ms": 10})
    delays = [a.shard_delay_s(1) for _ in range(50)]
    assert delays == [b.shard_delay_s(1) for _ in range(50)]
    assert all(0.050 <= d <= 0.060 for d in delays)
    assert len(set(delays)) > 1
    assert a.shard_delay_s(0) == 0.0


def test_failing_shard_fails_at_its_rate_reproducibly() -> None:
    a, b = _faults(), _faults()
    for f in (a, b):
        f.set("failing_shard", {"shard": 3, "error_rate": 0.25})
    outcomes = [a.shard_fails(3) for _ in range(4000)]
    assert outcomes == [b.shard_fails(3) for _ in range(4000)]
    assert 0.22 < sum(outcomes) / len(outcomes) < 0.28
    assert not any(a.shard_fails(2) for _ in range(100))


def test_a_different_seed_gives_a_different_sequence() -> None:
    a, b = _faults(), _faults()
    a.set("failing_shard", {"shard": 0, "error_rate": 0.5, "seed": 7})
    b.set("failing_shard", {"shard": 0, "error_rate": 0.5, "seed": 8})
    assert [a.shard_fails(0) for _ in range(64)] != [b.shard_fails(0) for _ in range(64)]


def test_hot_keys_pick_a_seeded_set_within_the_catalogue() -> None:
    a, b = _faults(), _faults()
    a.set("hot_keys", {"keys": 12, "share": 0.8})
    b.set("hot_keys", {"keys": 12, "share": 0.8})
    assert a.hot_ids() == b.hot_ids()
    assert len(set(a.hot_ids())) == 12
    assert all(1 <= i <= 1000 for i in a.hot_ids())
    entry = a.describe("hot_keys")[0]
    assert entry["active"]
    assert entry["hot_ids"] == a.hot_ids()


def test_each_accessor_reflects_its_fault_and_clearing_restores_every_default() -> None:
    faults = _faults()
    faults.set("slow_shard", {"shard": 0, "delay_ms": 5})
    faults.set("failing_shard", {"shard": 0, "error_rate": 1})
    faults.set("cache_outage", {})
    faults.set("cache_ttl", {"seconds": 0.01})
    faults.set("hot_keys", {})
    faults.set("sequential_fanout", {})
    faults.set("pool_size", {"shard": 2, "size": 1})
    faults.set("cpu_burn", {"route": "/search", "ms": 3})
    assert faults.shard_delay_s(0) == pytest.approx(0.005)
    assert faults.shard_fails(0)
    assert faults.cache_unreachable()
    assert faults.cache_ttl_s(60) == 0.01
    assert faults.hot_ids()
    assert faults.sequential_fanout()
    assert faults.pool_limit(2, 4) == 1
    assert faults.pool_limit(1, 4) == 4
    assert faults.cpu_burn_ms("/search") == 3
    assert faults.cpu_burn_ms("/items") == 0

    cleared = faults.clear_all()
    assert set(cleared) == set(FAULTS)
    assert faults.shard_delay_s(0) == 0
    assert not faults.shard_fails(0)
    assert not faults.cache_unreachable()
    assert faults.cache_ttl_s(60) == 60
    assert faults.hot_ids() == []
    assert not faults.sequential_fanout()
    assert faults.pool_limit(2, 4) == 4
    assert faults.cpu_burn_ms("/search") == 0
    assert not any(entry["active"] for entry in faults.describe())


def test_clearing_an_inactive_fault_is_harmless_but_an_unknown_one_is_an_error() -> None:
    faults = _faults()
    assert faults.clear("slow_shard") is None
    with pytest.raises(UnknownFault):
        faults.clear("slow")


def test_cpu_burn_on_every_route() -> None:
    faults = _faults()
    faults.set("cpu_burn", {"ms": 2})
    assert all(faults.cpu_burn_ms(r) == 2 for r in ROUTES)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cache_outage", ("cache_outage", {})),
        ("slow_shard:shard=2,delay_ms=50", ("slow_shard", {"shard": 2, "delay_ms": 50})),
        ("cpu_burn:route=/search,ms=2.5", ("cpu_burn", {"route": "/search", "ms": 2.5})),
    ],
)
def test_parse_fault_arg(text: str, expected: tuple[str, dict[str, object]]) -> None:
    assert parse_fault_arg(text) == expected


def test_parse_fault_arg_rejects_a_missing_equals() -> None:
    with pytest.raises(InvalidFaultParams, match="key=value"):
        parse_fault_arg("slow_shard:shard")
