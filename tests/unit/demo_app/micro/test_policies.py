"""The client side's pure rules: which replica, when to retry and how long to wait, when
the circuit opens — each with an injected clock or random generator, no I/O."""

from __future__ import annotations

import random

import pytest

from demo_app.micro.balancer import Balancer, Endpoint
from demo_app.micro.breaker import BreakerState, CircuitBreaker
from demo_app.micro.retry import RetryBudget, RetryPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _endpoints(n: int = 3) -> list[Endpoint]:
    return [Endpoint(f"catalog-{i}", f"http://127.0.0.1:{9000 + i}") for i in range(n)]


# --- balancer ------------------------------------------------------------------------------


def test_least_outstanding_picks_the_replica_with_fewest_calls_in_flight() -> None:
    a, b, c = _endpoints()
    a.outstanding, b.outstanding, c.outstanding = 3, 1, 2
    assert Balancer([a, b, c]).pick() is b


def test_ties_are_taken_in_turn_so_idle_replicas_share_the_load() -> None:
    balancer = Balancer(_endpoints())
    picked = [balancer.pick().instance for _ in range(30)]
    assert {picked.count(f"catalog-{i}") for i in range(3)} == {10}


def test_round_robin_cycles_whatever_is_in_flight() -> None:
    eps = _endpoints()
    eps[0].outstanding = 50
    balancer = Balancer(eps, strategy="round_robin")
    assert {balancer.pick().instance for _ in range(3)} == {"catalog-0", "catalog-1", "catalog-2"}


def test_a_retry_goes_to_a_replica_this_call_has_not_tried() -> None:
    balancer = Balancer(_endpoints())
    first = balancer.pick()
    second = balancer.pick([first])
    third = balancer.pick([first, second])
    assert len({first.instance, second.instance, third.instance}) == 3
    assert balancer.pick([first, second, third]) is not None  # all tried: any again


def test_connection_failures_in_a_row_eject_and_an_answer_in_between_resets_the_count() -> None:
    a, b = _endpoints(2)
    balancer = Balancer([a, b], eject_after=3)
    assert balancer.on_attempt(a, connection_failed=True) is None
    assert balancer.on_attempt(a, connection_failed=True) is None
    assert balancer.on_attempt(a, connection_failed=False) is None  # it answered: reset
    assert balancer.on_attempt(a, connection_failed=True) is None
    assert balancer.on_attempt(a, connection_failed=True) is None
    ejected = balancer.on_attempt(a, connection_failed=True)
    assert ejected is not None
    assert ejected.kind == "ejected"
    assert "3 connection failures" in ejected.reason
    assert not a.healthy
    assert all(balancer.pick() is b for _ in range(5))


def test_failed_health_checks_eject_and_good_ones_readmit() -> None:
    a, b = _endpoints(2)
    balancer = Balancer([a, b], unhealthy_after=2, healthy_after=2)
    assert balancer.on_check(a, False) is None
    out = balancer.on_check(a, False)
    assert out is not None
    assert out.kind == "ejected"
    assert balancer.on_check(a, True) is None  # one good check is not enough
    back = balancer.on_check(a, True)
    assert back is not None
    assert back.kind == "readmitted"
    assert a.healthy


def test_a_replica_still_starting_is_admitted_by_its_first_good_check_never_ejected() -> None:
    a = Endpoint("catalog-0", "http://x", healthy=False, seen=False)
    balancer = Balancer([a], eject_after=1, unhealthy_after=1)
    assert balancer.on_check(a, False) is None
    assert balancer.on_attempt(a, connection_failed=True) is None
    admitted = balancer.on_check(a, True)
    assert admitted is not None
    assert admitted.kind == "admitted"
    assert a.healthy


def test_with_every_replica_out_calls_still_go_somewhere() -> None:
    eps = _endpoints(2)
    for e in eps:
        e.healthy = False
    balancer = Balancer(eps)
    assert balancer.pick() in eps


def test_bad_balancer_arguments_name_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="least_outstanding, round_robin"):
        Balancer(_endpoints(), strategy="random")
    with pytest.raises(ValueError, match="at least one endpoint"):
        Balancer([])


# --- retry -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "status", "idempotent", "expected"),
    [
        ("connect", None, False, True),  # never sent: safe for a POST too
        ("timeout", None, True, True),
        ("timeout", None, False, False),  # a POST may have been applied
        ("transport", None, True, True),
        ("transport", None, False, False),
        ("error", 503, True, True),
        ("error", 502, True, True),
        ("error", 500, True, False),  # a bug upstream, not a passing condition
        ("error", 503, False, False),
        ("ok", 200, True, False),
        ("cancelled", None, True, False),
    ],
)
def test_only_safe_failures_are_retried(
    outcome: str, status: int | None, idempotent: bool, expected: bool
) -> None:
    policy = RetryPolicy()
    assert policy.retryable(outcome, status, idempotent=idempotent) is expected  # type: ignore[arg-type]


def test_retry_storm_policy_retries_every_failure_of_every_method() -> None:
    storm = RetryPolicy(5, 0.0, 0.0, retry_all=True)
    assert storm.retryable("error", 500, idempotent=False)
    assert storm.retryable("timeout", None, idempotent=False)
    assert not storm.retryable("ok", 404, idempotent=False)
    assert storm.backoff_s(3, random.Random(1)) == 0.0


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    policy = RetryPolicy(max_retries=5, base_backoff_s=0.1, max_backoff_s=0.5)
    rng = random.Random(7)
    for retry, ceiling in ((1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (5, 0.5)):
        pauses = [policy.backoff_s(retry, rng) for _ in range(400)]
        assert max(pauses) <= ceiling
        assert max(pauses) > 0.9 * ceiling  # spread over the whole range, not clustered
        assert min(pauses) < 0.1 * ceiling


def test_the_budget_allows_a_fifth_of_calls_as_retries_plus_a_floor() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.2, min_per_s=1.0, cap=5.0, clock=clock)
    spent = sum(budget.try_spend() for _ in range(10))
    assert spent == 5  # the bucket starts full
    for _ in range(100):
        budget.record_call()
    assert sum(budget.try_spend() for _ in range(100)) == 5  # capped, not 20
    clock.now += 2.0
    assert sum(budget.try_spend() for _ in range(10)) == 2  # the floor: 1 a second


def test_bad_retry_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=50)
    with pytest.raises(ValueError, match="backoff"):
        RetryPolicy(base_backoff_s=1.0, max_backoff_s=0.5)


# --- breaker -----------------------------------------------------------------------------------


def _breaker(clock: Clock, changes: list[BreakerState]) -> CircuitBreaker:
    return CircuitBreaker(
        window=10, min_calls=5, failure_ratio=0.5, open_s=5.0, probes=2, clock=clock,
        on_change=changes.append,
    )  # fmt: skip


def test_the_circuit_opens_when_half_the_recent_calls_failed() -> None:
    changes: list[BreakerState] = []
    breaker = _breaker(Clock(), changes)
    for ok in (True, True, True, False, False):
        assert breaker.allow()
        breaker.done(ok)
    assert breaker.state is BreakerState.CLOSED  # 2 of 5
    assert breaker.allow()
    breaker.done(False)  # 3 of 6
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert changes == [BreakerState.OPEN]


def test_too_few_calls_never_open_it() -> None:
    breaker = _breaker(Clock(), [])
    for _ in range(4):
        breaker.done(False)
    assert breaker.state is BreakerState.CLOSED


def test_after_open_s_a_few_probes_go_and_their_success_closes_it() -> None:
    clock, changes = Clock(), list[BreakerState]()
    breaker = _breaker(clock, changes)
    for _ in range(5):
        breaker.done(False)
    assert breaker.retry_after_s() == pytest.approx(5.0)
    clock.now += 5.0
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert breaker.allow()
    assert not breaker.allow()  # two probes at a time
    breaker.done(True)
    breaker.done(True)
    assert breaker.state is BreakerState.CLOSED
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_a_failed_probe_opens_it_again_for_another_open_s() -> None:
    clock = Clock()
    breaker = _breaker(clock, [])
    for _ in range(5):
        breaker.done(False)
    clock.now += 5.0
    assert breaker.allow()
    breaker.done(False)
    assert breaker.state is BreakerState.OPEN
    clock.now += 4.0
    assert not breaker.allow()


def test_an_abandoned_probe_gives_its_slot_back() -> None:
    clock = Clock()
    breaker = _breaker(clock, [])
    for _ in range(5):
        breaker.done(False)
    clock.now += 5.0
    assert breaker.allow()
    assert breaker.allow()
    breaker.done(None)
    assert breaker.allow()
    assert breaker.state is BreakerState.HALF_OPEN
