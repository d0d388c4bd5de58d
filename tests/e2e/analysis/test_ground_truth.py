"""Issue 7's acceptance test: for every demo fault, `narrows diagnose --json` on a real
`narrows up` puts the right kind and subject first; a healthy run raises no alarm.

Parameters vary across runs — which shard, how much delay or error rate, which route,
how much load, how skewed the keys — so the engine cannot lean on one shard number or
one magnitude. Each case is its own `narrows up` (tests/support/ground_truth.py); the
cases run a few at a time, which is also what keeps the suite within minutes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.ground_truth import Case, Outcome, Runs, hot_shard_of, workers

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DEMO = {"service.name": "narrows-demo"}
ITEMS = {"app.cache.name": "items"}


def shard(n: int) -> dict[str, str]:
    return {"app.shard.id": str(n)}


FAULTS = [
    Case("slow_shard-2-40ms", "slow_shard", {"shard": 2, "delay_ms": 40}, ("slow_shard", shard(2))),
    Case(
        "slow_shard-0-8ms-jitter-30rps",
        "slow_shard",
        {"shard": 0, "delay_ms": 8, "jitter_ms": 4},
        ("slow_shard", shard(0)),
        rate=30,
    ),
    Case(
        "failing_shard-1-30pct",
        "failing_shard",
        {"shard": 1, "error_rate": 0.3},
        ("failing_shard", shard(1)),
    ),
    Case(
        "failing_shard-3-5pct",
        "failing_shard",
        {"shard": 3, "error_rate": 0.05},
        ("failing_shard", shard(3)),
    ),
    Case(
        "cache_outage-35rps-zipf",
        "cache_outage",
        {},
        ("cache_outage", ITEMS),
        rate=35,
        keys="zipf:1.1",
    ),
    # The cache must be warm before the switch and the window must start warm: a smaller
    # catalogue warms in seconds, and the window reaches 4 s back.
    Case(
        "cache_ttl-50ms-50rps-zipf",
        "cache_ttl",
        {"seconds": 0.05},
        ("cache_inefficiency", ITEMS),
        keys="zipf:1.1",
        items=300,
        rate=50,
        before=200,
        after=450,
        lead_s=4,
        warm_hit_ratio=0.55,
    ),
    Case(
        "sequential_fanout-30rps",
        "sequential_fanout",
        {},
        ("sequential_fanout", {"http.request.method": "GET", "http.route": "/search"}),
        also=({"http.request.method": "GET", "http.route": "/items"},),
        rate=30,
    ),
    # SQLite queries take about a millisecond, so a one-connection pool queues only when
    # each query holds its connection longer: a networked database's round trip.
    Case(
        "pool_size-3-db-15ms",
        "pool_size",
        {"shard": 3, "size": 1},
        ("pool_contention", shard(3)),
        up_args=("--db-latency-ms", "15"),
    ),
    Case(
        "pool_size-0-db-6ms-60rps",
        "pool_size",
        {"shard": 0, "size": 1},
        ("pool_contention", shard(0)),
        rate=60,
        up_args=("--db-latency-ms", "6"),
    ),
    Case(
        "cpu_burn-search-15ms",
        "cpu_burn",
        {"route": "/search", "ms": 15},
        ("event_loop_blocking", {**DEMO, "http.request.method": "GET", "http.route": "/search"}),
    ),
    # A 4 ms burn on every request keeps the loop busy a fifth of the time at 50 req/s. At
    # 30 req/s (an eighth) the loop's share of the slowest requests' time sat at 0.32–0.41
    # in eight runs, and at 0.248 in one CI run — under the 0.25 the engine asks for, so
    # `info`; at 50 req/s it was 0.42–0.58 in four.
    Case(
        "cpu_burn-every-route-4ms-50rps",
        "cpu_burn",
        {"route": "*", "ms": 4},
        ("event_loop_blocking", DEMO),
        rate=50,
    ),
    Case("hot_keys-1-key", "hot_keys", {"share": 0.9, "keys": 1, "seed": 8}, hot_shard_of),
]
HEALTHY = [
    Case("healthy-40rps", None),
    # The same latency with the default pools: slow queries alone are not contention.
    Case("healthy-40rps-db-15ms", None, up_args=("--db-latency-ms", "15")),
]


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runs]:
    """Every selected case of this module, started together (a few at a time)."""
    selected = [
        item.callspec.params["case"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    ]
    runner = Runs(selected, tmp_path_factory, workers())
    yield runner
    runner.close()


def _top_alarm(outcome: Outcome, kind: str) -> dict:  # type: ignore[type-arg]
    assert outcome.findings, "no findings at all\n" + outcome.describe()
    first = outcome.findings[0]
    assert first["severity"] in ("notable", "critical"), outcome.describe(kind=kind)
    assert first["evidence"]["explained_by"] is None, outcome.describe(kind=kind)
    return first


@pytest.mark.parametrize("case", FAULTS, ids=lambda c: c.id)
def test_diagnose_puts_the_fault_first(case: Case, runs: Runs) -> None:
    outcome = runs.outcome(case)
    expected = case.expected(outcome.fault_state)
    assert expected is not None
    first = _top_alarm(outcome, expected[0])
    # One fault on several subjects (fan-out: both routes) may rank any of them first: the
    # scores weigh each route's traffic and saving, and came within 0.01 of each other.
    subjects = [expected[1], *map(dict, case.also)]
    assert first["kind"] == expected[0], outcome.describe(kind=expected[0])
    assert first["subject"] in subjects, outcome.describe(kind=expected[0])
    for subject in subjects:
        assert any(
            f["kind"] == expected[0] and f["subject"] == subject and f["severity"] != "info"
            for f in outcome.findings
        ), f"no {expected[0]} alarm on {subject}\n" + outcome.describe(kind=expected[0])


@pytest.mark.parametrize("case", HEALTHY, ids=lambda c: c.id)
def test_a_healthy_demo_raises_no_alarm(case: Case, runs: Runs) -> None:
    outcome = runs.outcome(case)
    alarms = [f for f in outcome.findings if f["severity"] != "info"]
    assert not alarms, outcome.describe()
    assert "failed on this data" not in outcome.stderr, outcome.stderr
