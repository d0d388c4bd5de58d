"""diagnose: every detector runs (or says why not), symptoms link to their cause, and the
output is JSON-ready."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from dashboard.analysis.capacity import usl
from dashboard.analysis.diagnose import diagnose, diagnose_report, link_causes
from dashboard.analysis.findings import Evidence, Finding, Impact, findings_to_json
from dashboard.analysis.inputs import AnalysisInputs, inputs_from_traces
from tests.support.synthetic import Fault, Scenario, generate
from tests.unit.analysis.helpers import run_scenario, zipkin_trace


def f(
    kind: str, subject: dict[str, str], score: float, severity: str = "notable", ratio: float = 1.0
) -> Finding:
    return Finding(
        kind=kind,  # type: ignore[arg-type]
        subject=subject,
        summary=kind,
        impact=Impact(score * 100, "ms", "tail", score),
        confidence=0.9,
        severity=severity,  # type: ignore[arg-type]
        evidence=Evidence(aggregate={"ratio": ratio}),
    )


def test_empty_inputs_give_no_findings_and_name_what_was_skipped() -> None:
    report = diagnose_report(AnalysisInputs(traces=[], slow_traces=[]))
    assert report.findings == []
    assert any(s.startswith("saturation: needs load_sweep") for s in report.skipped)
    assert any(s.startswith("SLO burn: needs red") for s in report.skipped)
    assert not [s for s in report.skipped if "failed" in s]


def test_data_a_backend_lacks_is_reported_not_guessed() -> None:
    report = run_scenario(seed=51, duration_s=5.0, inputs={"missing": frozenset({"pool_wait"})})
    assert "pool contention: needs pool_wait, which this source does not provide" in report.skipped
    assert not [x for x in report.findings if x.kind == "pool_contention"]


def test_a_cause_outranks_the_stronger_symptoms_it_explains() -> None:
    cause = f("slow_shard", {"app.shard.id": "2"}, 0.4, ratio=8.0)
    pool = f("pool_contention", {"app.shard.id": "2"}, 0.9, "critical", ratio=2.0)
    other_pool = f("pool_contention", {"app.shard.id": "3"}, 0.3)
    route = f("slow_operation", {"http.route": "/search", "app.shard.id": "2"}, 0.8, "critical")
    burn = f("slo_burn", {"slo": "availability 99.900%"}, 0.95, "critical")
    ranked = link_causes([route, pool, burn, other_pool, cause])
    assert ranked[0] == cause.with_evidence(explains=tuple(sorted([pool.ref, route.ref, burn.ref])))
    assert ranked[1].ref == other_pool.ref  # another shard: not explained, a cause of its own
    assert {x.evidence.explained_by for x in ranked[2:]} == {cause.ref}


def test_of_two_findings_that_could_cause_each_other_the_larger_ratio_is_the_cause() -> None:
    hot = f("hot_shard", {"app.shard.id": "1"}, 0.3, ratio=1.5)
    slow = f("slow_shard", {"app.shard.id": "1"}, 0.6, "critical", ratio=30.0)
    ranked = link_causes([hot, slow])
    assert ranked[0].ref == slow.ref
    assert ranked[1].evidence.explained_by == slow.ref
    hot_keys = f("hot_shard", {"app.shard.id": "1"}, 0.5, ratio=2.5)
    busier = f("slow_shard", {"app.shard.id": "1"}, 0.6, "critical", ratio=1.6)
    assert link_causes([busier, hot_keys])[0].ref == hot_keys.ref


def test_an_info_finding_explains_nothing() -> None:
    weak = f("slow_shard", {"app.shard.id": "2"}, 0.05, "info")
    pool = f("pool_contention", {"app.shard.id": "2"}, 0.5)
    assert link_causes([weak, pool])[0].evidence.explained_by is None


def test_the_whole_diagnosis_serialises_to_json() -> None:
    findings = run_scenario(
        Fault("failing_shard", {"shard": 2, "error_rate": 0.2}), seed=52
    ).findings
    data = json.loads(findings_to_json(findings))
    assert data[0]["kind"] == "failing_shard"
    assert {"kind", "subject", "summary", "impact", "confidence", "severity", "evidence"} <= set(
        data[0]
    )


def test_traffic_near_the_measured_capacity_is_reported_as_saturation() -> None:
    steps = np.array([1, 2, 4, 8, 16, 32], dtype=float)
    x = usl(steps, 30.0, 0.1, 0.002)  # peaks near 150 req/s; the scenario sends ~150
    sweep = pd.DataFrame(
        {
            "concurrency": steps,
            "throughput_rps": x,
            "p50_ms": 1000 * steps / x,
            "p95_ms": 2000 * steps / x,
            "p99_ms": 3000 * steps / x,
            "error_rate": 0.0,
        }
    )
    traces = generate(Scenario(seed=53, duration_s=10.0))
    findings = diagnose(inputs_from_traces(traces, load_sweep=sweep))
    assert findings[0].kind == "saturation"
    assert findings[0].is_alarm


def test_findings_that_explain_each_other_in_a_circle_keep_one_root() -> None:
    hot = f("hot_shard", {"app.shard.id": "1"}, 0.3, ratio=3.0)  # → slow (3 > 2)
    slow = f("slow_shard", {"app.shard.id": "1"}, 0.5, ratio=2.0)  # → pool (always)
    pool = f("pool_contention", {"app.shard.id": "1"}, 0.9, "critical", ratio=4.0)  # → hot (4 > 3)
    ranked = link_causes([hot, slow, pool])
    roots = [x for x in ranked if x.evidence.explained_by is None]
    assert [r.ref for r in roots] == [pool.ref]
    assert all(x.evidence.explained_by == pool.ref for x in ranked[1:])


def test_a_slow_operation_says_what_sets_its_slowest_spans_apart() -> None:
    findings = run_scenario(Fault("slow_shard", {"shard": 3, "delay_ms": 20.0}), seed=54).findings
    search = next(
        x for x in findings if x.kind == "slow_operation" and x.subject["http.route"] == "/search"
    )
    assert any("shard_id=3" in note for note in search.evidence.notes), search.evidence.notes


def test_real_traces_of_other_shapes_are_diagnosed_without_failing(fixtures_dir: Path) -> None:
    """Zipkin's sample traces (no shards, no cache, skew, shared spans) go through every
    detector: nothing fails and nothing is invented."""
    traces = [
        zipkin_trace(fixtures_dir, name)
        for name in (
            "skew.json",
            "yelp.json",
            "messaging.json",
            "smartthings-oauth-authorization.json",
        )
    ]
    report = diagnose_report(inputs_from_traces(traces, slow_per_route=5))
    assert not [s for s in report.skipped if "failed" in s]
    assert not [f for f in report.findings if f.is_alarm]
