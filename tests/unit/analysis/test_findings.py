"""Findings are plain data: validated, sortable, and JSON that reads back the same."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dashboard.analysis.findings import (
    Evidence,
    Finding,
    Impact,
    findings_from_json,
    findings_to_json,
    severity_for,
    sort_findings,
)


def finding(
    kind: str = "slow_shard", score: float = 0.5, severity: str = "critical", **ev: object
) -> Finding:
    return Finding(
        kind=kind,  # type: ignore[arg-type]
        subject={"app.shard.id": "2"},
        summary="Queries on shard 2 are slow.",
        impact=Impact(38.0, "ms", "mean of the slowest 20 GET /search", score),
        confidence=0.9,
        severity=severity,  # type: ignore[arg-type]
        evidence=Evidence(**ev),  # type: ignore[arg-type]
    )


def test_a_finding_survives_a_json_round_trip() -> None:
    f = finding(trace_ids=("a" * 32,), aggregate={"shards": [{"shard_id": "2", "p50": 41.5}]})
    assert findings_from_json(findings_to_json([f])) == [f]


def test_numpy_values_and_nan_in_evidence_become_plain_json() -> None:
    f = finding(
        aggregate={"n": np.int64(3), "x": np.float64(1.5), "flag": np.bool_(True), "gap": math.nan}
    )
    data = json.loads(findings_to_json([f]))[0]["evidence"]["aggregate"]
    assert data == {"n": 3, "x": 1.5, "flag": True, "gap": None}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("kind", "slow_db", "kind must be one of"),
        ("severity", "high", "severity must be one of"),
        ("confidence", 1.5, "confidence must be within"),
    ],
)
def test_invalid_fields_are_rejected_with_the_valid_range(
    field: str, value: object, message: str
) -> None:
    args = {"kind": "slow_shard", "severity": "info", "confidence": 0.5, field: value}
    with pytest.raises(ValueError, match=message):
        Finding(
            kind=args["kind"],  # type: ignore[arg-type]
            subject={},
            summary="",
            impact=Impact(0.0, "ms", "", 0.0),
            confidence=args["confidence"],  # type: ignore[arg-type]
            severity=args["severity"],  # type: ignore[arg-type]
        )


def test_alarms_sort_before_info_and_causes_before_their_symptoms_then_by_impact() -> None:
    info_big = finding("slow_operation", 0.9, "info")
    symptom = finding(
        "pool_contention", 0.99, "critical", explained_by="slow_shard {app.shard.id=2}"
    )
    cause = finding("slow_shard", 0.4, "notable")
    bigger = finding("failing_shard", 0.8, "notable")
    assert sort_findings([info_big, symptom, cause, bigger]) == [bigger, cause, symptom, info_big]


def test_an_insignificant_difference_is_info_whatever_its_size() -> None:
    assert severity_for(0.9, significant=False) == "info"
    assert severity_for(0.05, significant=True) == "info"
    assert severity_for(0.2, significant=True) == "notable"
    assert severity_for(0.6, significant=True) == "critical"


def test_the_ref_names_kind_and_subject() -> None:
    assert finding().ref == "slow_shard {app.shard.id=2}"
