"""Findings: the one output shape of every detector, plain data that sorts and serialises.

A finding names *what* is wrong (``kind``), *where* (``subject``: attribute → value, an open
dict so later parts can add ``service.name`` or ``service.instance.id``), how much it costs
(``impact``), how sure we are (``confidence``), how urgent it is (``severity``) and the
evidence (trace ids and the aggregate that shows it). ``narrows diagnose --json`` prints
``findings_to_json``; tests read it back with ``Finding.from_dict``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast, get_args

import numpy as np

__all__ = [
    "KINDS",
    "SEVERITIES",
    "Evidence",
    "Finding",
    "Impact",
    "Kind",
    "Severity",
    "findings_from_json",
    "findings_to_json",
    "severity_for",
    "sort_findings",
]

Kind = Literal[
    "slow_shard",
    "hot_shard",
    "failing_shard",
    "cache_outage",
    "cache_inefficiency",
    "sequential_fanout",
    "pool_contention",
    "event_loop_blocking",
    "saturation",
    "slo_burn",
    "slow_operation",
    "slow_replica",
    "replica_down",
    "retry_storm",
]
Severity = Literal["info", "notable", "critical"]
KINDS: tuple[str, ...] = get_args(Kind)
SEVERITIES: tuple[str, ...] = get_args(Severity)
_SEVERITY_RANK = {"info": 0, "notable": 1, "critical": 2}

#: One failing request weighs as much as this share of tail latency removed, so error and
#: latency findings sort on one scale (5 % of requests failing ≈ a fix that halves the tail).
ERROR_WEIGHT = 10.0
#: Score (share of the tail latency a fix removes, or weighted error share) that makes a
#: significant finding notable / critical. docs/analysis.md explains the choice.
NOTABLE_SCORE = 0.15
CRITICAL_SCORE = 0.5


@dataclass(frozen=True)
class Impact:
    """How much fixing it is worth.

    ``value`` is in ``unit``: ``ms`` (latency a fix takes off the statistic named in
    ``on``, e.g. "mean of the slowest 20 GET /search"), ``error_share`` (fraction of
    requests failing because of it), ``load_ratio`` (load share / fair share; attempts per
    call) or ``capacity_share`` (fraction of a service's replicas lost).
    ``score`` puts every unit on one scale for sorting: the fraction of the affected
    latency removed, or ``ERROR_WEIGHT`` × error share, capped at 1.
    """

    value: float
    unit: Literal["ms", "error_share", "load_ratio", "capacity_share"]
    on: str
    score: float


@dataclass(frozen=True)
class Evidence:
    """What a human can check: example traces and the numbers behind the claim."""

    trace_ids: tuple[str, ...] = ()
    aggregate: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: "kind {subject}" of the finding that explains this one (a symptom), if any.
    explained_by: str | None = None
    #: "kind {subject}" of the symptoms this finding explains.
    explains: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    kind: Kind
    subject: dict[str, str]
    summary: str
    impact: Impact
    confidence: float
    severity: Severity
    evidence: Evidence = field(default_factory=Evidence)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be within [0, 1]; got {self.confidence}")

    @property
    def ref(self) -> str:
        """A stable short name, e.g. ``slow_shard {app.shard.id=2}``."""
        inner = ", ".join(f"{k}={v}" for k, v in sorted(self.subject.items()))
        return f"{self.kind} {{{inner}}}"

    @property
    def is_alarm(self) -> bool:
        return self.severity != "info"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": dict(self.subject),
            "summary": self.summary,
            "impact": {
                "value": _finite(self.impact.value),
                "unit": self.impact.unit,
                "on": self.impact.on,
                "score": _finite(self.impact.score),
            },
            "confidence": _finite(self.confidence),
            "severity": self.severity,
            "evidence": {
                "trace_ids": list(self.evidence.trace_ids),
                "aggregate": _jsonable(self.evidence.aggregate),
                "notes": list(self.evidence.notes),
                "explained_by": self.evidence.explained_by,
                "explains": list(self.evidence.explains),
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        imp = data["impact"]
        ev = data.get("evidence", {})
        return cls(
            kind=cast(Kind, data["kind"]),
            subject={str(k): str(v) for k, v in data["subject"].items()},
            summary=str(data["summary"]),
            impact=Impact(
                value=float(imp["value"] or 0.0),
                unit=imp["unit"],
                on=str(imp["on"]),
                score=float(imp["score"] or 0.0),
            ),
            confidence=float(data["confidence"] or 0.0),
            severity=cast(Severity, data["severity"]),
            evidence=Evidence(
                trace_ids=tuple(ev.get("trace_ids", ())),
                aggregate=dict(ev.get("aggregate", {})),
                notes=tuple(ev.get("notes", ())),
                explained_by=ev.get("explained_by"),
                explains=tuple(ev.get("explains", ())),
            ),
        )

    def with_evidence(self, **changes: Any) -> Finding:
        return replace(self, evidence=replace(self.evidence, **changes))


def severity_for(score: float, *, significant: bool) -> Severity:
    """Severity from the impact score; a difference that is not significant stays info."""
    if not significant or not math.isfinite(score):
        return "info"
    if score >= CRITICAL_SCORE:
        return "critical"
    if score >= NOTABLE_SCORE:
        return "notable"
    return "info"


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Alarms before info; within them root causes before the symptoms they explain; then
    severity, then impact score, highest first (ties broken by kind and subject, so the
    order is stable)."""
    return sorted(
        findings,
        key=lambda f: (
            not f.is_alarm,
            f.evidence.explained_by is not None,
            -_SEVERITY_RANK[f.severity],
            -f.impact.score,
            f.ref,
        ),
    )


def findings_to_json(findings: Sequence[Finding], *, indent: int | None = 2) -> str:
    return json.dumps([f.to_dict() for f in findings], indent=indent, allow_nan=False)


def findings_from_json(text: str) -> list[Finding]:
    return [Finding.from_dict(d) for d in json.loads(text)]


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _jsonable(value: Any) -> Any:
    """numpy scalars, tuples and NaN → plain JSON values (NaN/inf become null)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    if f.is_integer() and not isinstance(value, float) and abs(f) < 2**53:
        return int(f)
    return f if math.isfinite(f) else None
