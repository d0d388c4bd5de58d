"""Ground truth on the micro topology (gateway, three catalog replicas, orders): with one
replica fault switched on, ``diagnose`` names the right kind, service and replica first and
explains the shard- and route-level symptoms by it; with none, nothing is notable."""

from __future__ import annotations

import pandas as pd
import pytest

from dashboard.analysis.diagnose import Diagnosis
from dashboard.analysis.findings import Finding, findings_from_json, findings_to_json
from dashboard.analysis.inputs import SloObjective
from dashboard.analysis.replicas import detect_replica_down, detect_retry_storm, ejections_frame
from dashboard.analysis.servicemap import calls_frame
from dashboard.sources.model import LogRecord, Trace
from tests.support.synthetic_micro import CATALOG, GATEWAY, Fault
from tests.unit.analysis.helpers import run_micro, span, trace

WINDOW_S = 8.0


def top(d: Diagnosis) -> Finding:
    assert d.findings, "no findings at all"
    first = d.findings[0]
    assert first.is_alarm, f"the top finding is only info: {first.ref}: {first.summary}"
    assert first.evidence.explained_by is None
    return first


def describe(d: Diagnosis) -> str:
    return "\n".join(f"{f.severity} {f.ref} score={f.impact.score:.2f}" for f in d.findings[:6])


def unexplained_alarms(d: Diagnosis) -> list[str]:
    return [f.ref for f in d.findings if f.is_alarm and f.evidence.explained_by is None]


@pytest.mark.parametrize(
    ("instance", "params", "seed", "fault_start"),
    [
        (0, {"delay_ms": 6.0, "jitter_ms": 2.0}, 2, 0.4),  # in the replica's own handling
        (1, {"delay_ms": 15.0, "where": "queries"}, 3, 0.0),  # on every shard it queries
    ],
)
def test_a_slow_replica_is_found_as_a_slow_replica_not_a_slow_shard(
    instance: int, params: dict[str, object], seed: int, fault_start: float
) -> None:
    d = run_micro(
        Fault("slow_replica", {"instance": instance, **params}),
        seed=seed,
        fault_start=fault_start,
        duration_s=WINDOW_S,
    )
    first = top(d)
    subject = {"service.name": CATALOG, "service.instance.id": f"catalog-{instance}"}
    assert (first.kind, first.subject) == ("slow_replica", subject), describe(d)
    assert unexplained_alarms(d) == [first.ref], describe(d)
    assert not [f for f in d.findings if f.kind == "slow_shard" and f.is_alarm], describe(d)
    for f in d.findings:
        if f.kind in ("pool_contention", "slow_operation") and f.is_alarm:
            assert f.evidence.explained_by == first.ref, f.ref
    assert first.impact.unit == "ms"
    assert first.evidence.trace_ids


def test_a_slow_replica_explains_the_gateways_latency_slo_burn() -> None:
    """A cause in a downstream service explains a symptom named after its callers."""
    d = run_micro(
        Fault("slow_replica", {"instance": 2, "delay_ms": 40.0}),
        seed=4,
        duration_s=WINDOW_S,
        inputs={"slo": SloObjective(availability=0.99, latency_ms=25.0)},
    )
    first = top(d)
    assert first.kind == "slow_replica", describe(d)
    assert GATEWAY in first.evidence.aggregate["affects_services"]
    burn = [f for f in d.findings if f.kind == "slo_burn" and f.is_alarm]
    assert burn, describe(d)
    assert burn[0].subject["service.name"] == GATEWAY
    assert burn[0].evidence.explained_by == first.ref


@pytest.mark.parametrize(("logs", "seed"), [(True, 5), (False, 6)])
def test_a_refusing_replica_is_found_as_replica_down(logs: bool, seed: int) -> None:
    """With the callers' ejection events, and from the traces alone (refused calls, then
    silence while its peers keep answering)."""
    d = run_micro(
        Fault("replica_down", {"instance": 1}),
        seed=seed,
        fault_start=0.5,
        duration_s=WINDOW_S,
        logs=logs,
    )
    first = top(d)
    subject = {"service.name": CATALOG, "service.instance.id": "catalog-1"}
    assert (first.kind, first.subject) == ("replica_down", subject), describe(d)
    assert first.evidence.aggregate["ejected"] is logs
    assert first.impact.unit == "capacity_share"
    assert first.impact.value == pytest.approx(1 / 3)
    assert "stopped answering" in first.summary
    assert unexplained_alarms(d) == [first.ref], describe(d)
    again = findings_from_json(findings_to_json(d.findings))
    assert [f.ref for f in again] == [f.ref for f in d.findings]


def test_a_retry_storm_is_found_as_one() -> None:
    d = run_micro(
        Fault("retry_storm", {"retries": 5, "backoff_ms": 0.0, "error_rate": 0.2}),
        seed=7,
        duration_s=WINDOW_S,
    )
    first = top(d)
    assert first.kind == "retry_storm", describe(d)
    assert first.subject["service.name"] == GATEWAY
    assert first.impact.unit == "load_ratio"
    catalog = next(
        f
        for f in d.findings
        if f.kind == "retry_storm" and f.subject["app.upstream.service"] == CATALOG
    )
    assert catalog.is_alarm, describe(d)
    agg = catalog.evidence.aggregate
    assert agg["resends_per_call"] >= 0.2
    assert agg["max_attempts_per_call"] >= 3
    assert agg["median_gap_before_resend_ms"] < 2.0  # no backoff
    assert catalog.evidence.trace_ids


def test_a_healthy_multi_service_window_raises_nothing_notable() -> None:
    d = run_micro(seed=9, duration_s=WINDOW_S, rate_rps=250.0, replicas=2)
    assert not [f for f in d.findings if f.is_alarm], describe(d)
    assert not [f for f in d.findings if f.kind in ("slow_replica", "replica_down", "retry_storm")]


def test_ejections_are_read_from_balancer_log_events_only() -> None:
    def record(body: str, **attrs: str) -> LogRecord:
        return LogRecord(1_700_000_000 * 10**9, GATEWAY, "WARN", body, attributes=attrs)

    frame = ejections_frame(
        [
            record("upstream readmitted", **{"upstream.service": CATALOG,
                                             "upstream.instance": "catalog-2"}),
            record("upstream ejected", **{"upstream.service": CATALOG,
                                          "upstream.instance": "catalog-2", "reason": "timeout"}),
            record("upstream ejected"),  # no instance: not a balancer decision we can place
            record("request finished", **{"upstream.instance": "catalog-1"}),
        ]
    )  # fmt: skip
    assert list(frame["event"]) == ["readmitted", "ejected"]
    assert list(frame["instance"]) == ["catalog-2", "catalog-2"]
    assert frame["reason"].iloc[1] == "timeout"
    assert isinstance(frame["ts"].dtype, pd.DatetimeTZDtype)


def _call(i: int, instance: str) -> Trace:
    """One gateway → catalog call, 10 ms apart, answered by ``instance``."""
    t0 = 10.0 * i
    return trace(
        span("GET", t0, t0 + 5, sid=f"c{i}", service=GATEWAY, instance="gateway-0",
             attrs={"app.upstream.service": CATALOG}),
        span("GET /items/{id}", t0 + 1, t0 + 4, f"c{i}", sid=f"s{i}", kind=2, service=CATALOG,
             instance=instance),
        trace_id=f"t{i}",
    )  # fmt: skip


def test_a_restarted_process_is_not_a_replica_down() -> None:
    """A restart gets a new service.instance.id: the old one goes quiet, but it was never
    balanced alongside the new one."""
    traces = [_call(i, "old-uuid" if i < 30 else "new-uuid") for i in range(60)]
    assert detect_replica_down(calls_frame(traces), []) == []


def test_a_replica_that_goes_quiet_while_its_peer_keeps_answering_is_down() -> None:
    traces = [_call(i, f"catalog-{i % 2}" if i < 30 else "catalog-0") for i in range(60)]
    (found,) = detect_replica_down(calls_frame(traces), [])
    assert found.subject["service.instance.id"] == "catalog-1"
    assert found.is_alarm
    assert "a deliberate scale-down looks the same" in found.summary


def test_one_refused_call_then_silence_while_the_peers_answer_is_a_replica_down() -> None:
    """The window starts as the replica dies: its one call in the window is refused, the
    caller ejects it, and its peers take every call after — from the traces alone."""
    traces = [_call(i, f"catalog-{i % 3}") for i in range(3)]
    refused = trace(
        span("GET", 30, 31, sid="c3", service=GATEWAY, instance="gateway-0", error=True,
             attrs={"app.upstream.service": CATALOG, "app.upstream.instance": "catalog-2",
                    "error.type": "ConnectError"}),
        trace_id="t3",
    )  # fmt: skip
    later = [_call(i, f"catalog-{i % 2}") for i in range(4, 40)]
    (found,) = detect_replica_down(calls_frame([refused, *later]), [])
    assert found.subject == {"service.name": CATALOG, "service.instance.id": "catalog-2"}
    assert found.is_alarm
    assert "no call reached it while its peers took 36" in found.summary
    # One *answered* call and then quiet says too little (a scale-down looks the same).
    assert detect_replica_down(calls_frame([*traces, *later]), []) == []


def test_a_replica_ejected_before_the_window_and_still_out_is_down_in_it() -> None:
    """The window begins after the replica died: no call reaches it, none is refused; the
    balancer's ejection before the window, never followed by a readmission, says it."""
    t0 = 1_700_000_000 * 10**9

    def record(body: str, instance: str, at_s: float) -> LogRecord:
        attrs = {"upstream.service": CATALOG, "upstream.instance": instance, "reason": "x"}
        return LogRecord(t0 + int(at_s * 1e9), GATEWAY, "WARN", body, attributes=attrs)

    ejections = ejections_frame(
        [
            record("upstream ejected", "catalog-2", -4.0),  # died 4 s before the window
            record("upstream ejected", "catalog-0", -60.0),  # long since back
            record("upstream readmitted", "catalog-0", -50.0),
        ]
    )
    calls = calls_frame([_call(i, f"catalog-{i % 2}") for i in range(40)])
    (found,) = detect_replica_down(calls, [], ejections, start_ns=t0 - 1)
    assert found.subject == {"service.name": CATALOG, "service.instance.id": "catalog-2"}
    assert found.is_alarm
    assert "ejected it before this window" in found.summary
    # Without the window's start every event counts as the window's (the old reading).
    assert {
        f.subject["service.instance.id"] for f in detect_replica_down(calls, [], ejections)
    } == {
        "catalog-0",
        "catalog-2",
    }


def _stormy_call(i: int, *, through_shard: bool) -> Trace:
    """A gateway call whose first attempt fails with a 503 (after a query on shard 2 of
    the catalog, or before any query: a hiccup) and is resent at once, then answered."""
    t0 = 20.0 * i
    up = {"app.upstream.service": CATALOG}
    first = [
        span("GET", t0, t0 + 4, sid=f"a{i}", service=GATEWAY, instance="gateway-0", error=True,
             attrs={**up, "app.upstream.instance": f"catalog-{i % 3}",
                    "http.response.status_code": 503}),
        span("GET /items/{id}", t0 + 1, t0 + 3, f"a{i}", sid=f"as{i}", kind=2, service=CATALOG,
             instance=f"catalog-{i % 3}", error=True),
    ]  # fmt: skip
    if through_shard:
        first.append(
            span("SELECT items", t0 + 1.5, t0 + 2.5, f"as{i}", kind=3, service=CATALOG,
                 instance=f"catalog-{i % 3}", error=True, attrs={"app.shard.id": "2"})
        )  # fmt: skip
    resent = [
        span("GET", t0 + 4.2, t0 + 8, sid=f"b{i}", service=GATEWAY, instance="gateway-0",
             attrs={**up, "app.upstream.instance": f"catalog-{(i + 1) % 3}",
                    "http.request.resend_count": 1, "http.response.status_code": 200}),
        span("GET /items/{id}", t0 + 5, t0 + 7, f"b{i}", sid=f"bs{i}", kind=2, service=CATALOG,
             instance=f"catalog-{(i + 1) % 3}"),
    ]  # fmt: skip
    return trace(*first, *resent, trace_id=f"t{i}")


@pytest.mark.parametrize("through_shard", [True, False])
def test_a_retry_storm_says_where_its_failed_attempts_failed(through_shard: bool) -> None:
    """The evidence that decides whether a shard set the storm off or suffers from it: of
    the failed attempts, the share per replica and the share that reached each shard."""
    traces = [_stormy_call(i, through_shard=through_shard) for i in range(12)]
    (storm,) = detect_retry_storm(calls_frame(traces), traces)
    agg = storm.evidence.aggregate
    assert storm.is_alarm
    assert agg["failed_attempts"] == 12
    third = pytest.approx(1 / 3, abs=1e-3)
    assert agg["failed_share_by_instance"] == {f"catalog-{k}": third for k in range(3)}
    expected = [{"service.name": CATALOG, "app.shard.id": "2", "share": 1.0}]
    assert agg["failed_share_through_shards"] == (expected if through_shard else [])
    # Without the traces the paths are unknown, and say so by being empty.
    (blind,) = detect_retry_storm(calls_frame(traces))
    assert blind.evidence.aggregate["failed_share_through_shards"] == []
