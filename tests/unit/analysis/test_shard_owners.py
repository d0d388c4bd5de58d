"""Shard ids are per service: in the micro topology the catalog's shards and the orders
service's shards share ids (0, 1, …) but are different databases. The shard detectors run
once per owning service, name it in the subject when there are several, and a failing
shard behind a caller's retries is still the root cause."""

from __future__ import annotations

import dataclasses

import pytest

from dashboard.analysis.diagnose import diagnose_report, link_causes
from dashboard.analysis.findings import Evidence, Finding, Impact
from dashboard.analysis.inputs import inputs_from_traces
from dashboard.analysis.replicas import ejections_frame
from tests.support import synthetic_micro
from tests.support.synthetic_micro import CATALOG, GATEWAY, ORDERS, Fault
from tests.unit.analysis.helpers import run_micro, run_scenario

WINDOW_S = 8.0


def describe(findings: list[Finding]) -> str:
    return "\n".join(f"{f.severity} {f.ref} score={f.impact.score:.2f}" for f in findings[:6])


def test_a_slow_catalog_shard_is_named_with_its_service() -> None:
    d = run_micro(Fault("slow_shard", {"shard": 1, "delay_ms": 20.0}), seed=13, duration_s=WINDOW_S)
    first = d.findings[0]
    assert (first.kind, first.subject) == (
        "slow_shard",
        {"service.name": CATALOG, "app.shard.id": "1"},
    ), describe(d.findings)
    assert "shard 1 of narrows-catalog" in first.summary
    # The orders service's shard 1 is another database: nothing is said about it.
    assert not [f for f in d.findings if f.subject.get("service.name") == ORDERS and f.is_alarm], (
        describe(d.findings)
    )


@pytest.mark.parametrize("counts_name_their_service", [True, False])
def test_hot_keys_on_the_catalog_make_its_shard_hot_not_the_orders_shard_of_that_id(
    counts_name_their_service: bool,
) -> None:
    """Counts that do not say whose shard they are (a source without the ``service``
    column) cannot be split between services: the sampled spans count instead."""
    window = synthetic_micro.generate(
        synthetic_micro.MicroScenario(
            faults=(Fault("hot_keys", {"shard": 0, "share": 0.8, "keys": 5}),),
            seed=14,
            duration_s=WINDOW_S,
        )
    )
    inputs = inputs_from_traces(window.traces, seed=14, ejections=ejections_frame(window.logs))
    assert inputs.shards is not None
    if not counts_name_their_service:
        merged = inputs.shards.drop(columns="service")
        inputs = dataclasses.replace(inputs, shards=merged)
    d = diagnose_report(inputs)
    first = d.findings[0]
    assert (first.kind, first.subject) == (
        "hot_shard",
        {"service.name": CATALOG, "app.shard.id": "0"},
    ), describe(d.findings)
    orders = [f for f in d.findings if f.subject.get("service.name") == ORDERS]
    assert not [f for f in orders if f.is_alarm], describe(orders)


def test_one_service_with_shards_keeps_the_shard_only_subject() -> None:
    d = run_scenario(Fault("slow_shard", {"shard": 2, "delay_ms": 30.0}), seed=3)
    assert (d.findings[0].kind, d.findings[0].subject) == ("slow_shard", {"app.shard.id": "2"})


def test_a_failing_catalog_shard_counts_the_requests_it_failed_even_when_retried() -> None:
    d = run_micro(
        Fault("failing_shard", {"shard": 1, "error_rate": 0.3}), seed=11, duration_s=WINDOW_S
    )
    first = d.findings[0]
    assert (first.kind, first.subject) == (
        "failing_shard",
        {"service.name": CATALOG, "app.shard.id": "1"},
    ), describe(d.findings)
    assert first.impact.value > 0
    assert GATEWAY in first.evidence.aggregate["affects_services"]
    burn = [f for f in d.findings if f.kind == "slo_burn" and f.is_alarm]
    assert burn
    assert burn[0].evidence.explained_by == first.ref


def _finding(kind: str, subject: dict[str, str], score: float, **aggregate: object) -> Finding:
    return Finding(
        kind=kind,  # type: ignore[arg-type]
        subject=subject,
        summary=kind,
        impact=Impact(score, "error_share", "requests", score),
        confidence=0.99,
        severity="critical" if score >= 0.5 else "notable",
        evidence=Evidence(aggregate=dict(aggregate)),
    )


def test_the_retries_a_failing_shard_sets_off_are_its_symptom_even_when_they_score_higher() -> None:
    """Under failing_shard the gateway resends the catalog's 503s: a retry storm can score
    above the shard, but the shard is the root cause and comes first."""
    shard = _finding(
        "failing_shard",
        {"service.name": CATALOG, "app.shard.id": "1"},
        0.4,
        affects_services=[CATALOG, GATEWAY, ORDERS],
    )
    storm = _finding(
        "retry_storm",
        {"service.name": GATEWAY, "app.upstream.service": CATALOG},
        0.9,
        affects_services=[CATALOG, GATEWAY, ORDERS],
    )
    ranked = link_causes([storm, shard])
    assert [f.ref for f in ranked] == [shard.ref, storm.ref]
    assert ranked[1].evidence.explained_by == shard.ref
    # A shard of a service the storm's caller does not reach explains nothing there.
    elsewhere = _finding(
        "failing_shard",
        {"service.name": "narrows-billing", "app.shard.id": "1"},
        0.4,
        affects_services=["narrows-billing"],
    )
    assert link_causes([storm, elsewhere])[0].ref == storm.ref


def _storm(score: float, through_shard_2: float, by_instance: dict[str, float]) -> Finding:
    shards = [{"service.name": CATALOG, "app.shard.id": "2", "share": through_shard_2}]
    return _finding(
        "retry_storm",
        {"service.name": GATEWAY, "app.upstream.service": CATALOG},
        score,
        affects_services=[CATALOG, GATEWAY, ORDERS],
        failed_attempts=40,
        failed_share_by_instance=by_instance,
        failed_share_through_shards=shards if through_shard_2 else [],
    )


def test_a_retry_storm_set_off_elsewhere_explains_the_shard_replica_and_loop_it_loads() -> None:
    """Catalog hiccups fail calls before any query; the gateway resends each at once. The
    storm's bursts slow a catalog shard and a replica and keep the gateway's loop busy:
    those are its symptoms, not its cause, however high they score."""
    storm = _storm(0.6, 0.0, {"catalog-0": 0.35, "catalog-1": 0.33, "catalog-2": 0.32})
    catalog = [CATALOG, GATEWAY, ORDERS]
    symptoms = [
        _finding("slow_shard", {"service.name": CATALOG, "app.shard.id": "2"}, 0.7,
                 affects_services=catalog),
        _finding("slow_replica", {"service.name": CATALOG, "service.instance.id": "catalog-1"},
                 0.7, affects_services=catalog),
        _finding("event_loop_blocking", {"service.name": GATEWAY}, 0.7),
        _finding("hot_shard", {"service.name": CATALOG, "app.shard.id": "2"}, 0.7,
                 affects_services=catalog),
    ]  # fmt: skip
    ranked = link_causes([*symptoms, storm])
    assert ranked[0].ref == storm.ref, describe(ranked)
    assert {f.evidence.explained_by for f in ranked[1:]} == {storm.ref}, describe(ranked)


def test_a_shard_the_storms_failures_went_through_is_its_cause_not_its_symptom() -> None:
    """Most failed attempts reached shard 2 (its queries failed or timed out): the shard
    sets the retries off, and the storm does not explain it back."""
    storm = _storm(0.9, 0.8, {"catalog-0": 0.34, "catalog-1": 0.33, "catalog-2": 0.33})
    for kind in ("slow_shard", "failing_shard"):
        shard = _finding(kind, {"service.name": CATALOG, "app.shard.id": "2"}, 0.4,
                         affects_services=[CATALOG, GATEWAY, ORDERS])  # fmt: skip
        ranked = link_causes([storm, shard])
        assert [f.ref for f in ranked] == [shard.ref, storm.ref], describe(ranked)
        assert ranked[1].evidence.explained_by == shard.ref
    # A shard the failures did not reach neither causes the storm nor escapes it.
    other = _finding("slow_shard", {"service.name": CATALOG, "app.shard.id": "0"}, 0.4,
                     affects_services=[CATALOG, GATEWAY, ORDERS])  # fmt: skip
    ranked = link_causes([storm, other])
    assert [f.ref for f in ranked] == [storm.ref, other.ref], describe(ranked)
    assert ranked[1].evidence.explained_by == storm.ref
    # A dead replica explains the storm only when the failed attempts went to it.
    down = _finding("replica_down", {"service.name": CATALOG, "service.instance.id": "catalog-1"},
                    0.33, affects_services=[CATALOG, GATEWAY, ORDERS])  # fmt: skip
    for on_it, cause in ((0.33, None), (0.9, down.ref)):
        spread = {"catalog-0": (1 - on_it) / 2, "catalog-1": on_it, "catalog-2": (1 - on_it) / 2}
        ranked = link_causes([_storm(0.9, 0.0, spread), down])
        (found,) = [f for f in ranked if f.kind == "retry_storm"]
        assert found.evidence.explained_by == cause, describe(ranked)
