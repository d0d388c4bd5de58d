"""``diagnose``: run every detector over one window, link symptoms to their root cause,
and rank so that the one root cause comes first.

One defect shows up in many places: a slow shard also makes every route that reads it
slow, makes requests queue for its pool and burns the error budget. Each detector reports
what it sees; then a finding that an *alarm* of a causing kind explains (same shard, same
route, or a service-wide cause) is marked ``explained_by`` that cause and sorts after
every unexplained alarm. Nothing is dropped: the symptoms stay visible, below their cause.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from dashboard.analysis.cache import detect_cache_inefficiency, detect_cache_outage
from dashboard.analysis.capacity import detect_saturation
from dashboard.analysis.fanout import detect_sequential_fanout
from dashboard.analysis.findings import Finding, sort_findings
from dashboard.analysis.inputs import AnalysisInputs, spans_frame
from dashboard.analysis.profiles import Profile, profiles, service_of
from dashboard.analysis.queueing import detect_event_loop_blocking, detect_pool_contention
from dashboard.analysis.shards import (
    detect_failing_shards,
    detect_hot_shards,
    detect_slow_shards,
    shard_table,
)
from dashboard.analysis.slo import detect_slo_burn
from dashboard.analysis.time_share import slow_operations

__all__ = ["EXPLAINS", "Diagnosis", "diagnose", "diagnose_report", "link_causes"]

#: cause kind → the kinds of symptom it can produce.
EXPLAINS: dict[str, frozenset[str]] = {
    "hot_shard": frozenset({"slow_shard", "pool_contention", "slow_operation", "slo_burn"}),
    "slow_shard": frozenset(
        {"hot_shard", "pool_contention", "slow_operation", "slo_burn", "saturation"}
    ),
    "failing_shard": frozenset({"slow_operation", "slo_burn"}),
    "cache_outage": frozenset(
        {
            "cache_inefficiency",
            "pool_contention",
            "slow_shard",
            "hot_shard",
            "slow_operation",
            "slo_burn",
            "saturation",
        }
    ),
    "cache_inefficiency": frozenset(
        {"pool_contention", "hot_shard", "slow_operation", "slo_burn", "saturation"}
    ),
    "sequential_fanout": frozenset({"slow_operation", "slo_burn"}),
    "pool_contention": frozenset({"hot_shard", "slow_operation", "slo_burn"}),
    "event_loop_blocking": frozenset({"slow_operation", "slo_burn"}),
    "saturation": frozenset({"pool_contention", "slow_operation", "slo_burn"}),
}
#: Subject keys that must agree for a cause to explain a symptom (when both have them).
_MATCH_KEYS = ("app.shard.id", "http.route", "app.cache.name")
#: Pairs that can cause each other on one shard: more load makes queries queue (hot keys),
#: and slow or queueing queries bring more load (concurrent misses of one key pile up).
#: The finding whose ``ratio`` (how many times worse than its peers) is larger is the cause.
_MUTUAL = frozenset(
    {frozenset({"hot_shard", "slow_shard"}), frozenset({"hot_shard", "pool_contention"})}
)
#: Causes that slow the whole service, whatever route or shard a symptom names.
_SERVICE_WIDE = frozenset(
    {"event_loop_blocking", "saturation", "cache_outage", "cache_inefficiency"}
)


@dataclass(frozen=True)
class Diagnosis:
    findings: list[Finding]
    #: Detectors that did not run, and why (data the backend lacks, or an error).
    skipped: tuple[str, ...]


@dataclass(frozen=True)
class _Context:
    inputs: AnalysisInputs
    typical: list[Profile]
    slow: list[Profile]
    #: SPAN_COLUMNS rows of the typical (random) sample, and its per-shard table.
    spans: pd.DataFrame
    shards: pd.DataFrame


def _detectors() -> list[tuple[str, str | None, Callable[[_Context], list[Finding]]]]:
    """(name, the input it cannot run without, the detector)."""

    return [
        ("hot shard", None, lambda c: detect_hot_shards(c.shards)),
        ("slow shard", "traces", lambda c: detect_slow_shards(c.spans, c.slow, c.shards)),
        (
            "failing shard",
            None,
            lambda c: detect_failing_shards(c.shards, c.typical),
        ),
        (
            "cache outage",
            None,
            lambda c: detect_cache_outage(
                c.inputs.cache, c.typical, c.slow, c.inputs.expected_hit_ratio
            ),
        ),
        (
            "cache inefficiency",
            None,
            lambda c: detect_cache_inefficiency(
                c.inputs.cache, c.typical, c.slow, c.inputs.expected_hit_ratio
            ),
        ),
        ("sequential fan-out", "traces", lambda c: detect_sequential_fanout(c.typical, c.slow)),
        (
            "pool contention",
            "pool_wait",
            lambda c: detect_pool_contention(c.spans, c.slow, c.inputs.shards),
        ),
        (
            "event-loop blocking",
            "traces",
            lambda c: detect_event_loop_blocking(c.typical, c.slow, c.inputs.red),
        ),
        (
            "saturation",
            "load_sweep",
            lambda c: detect_saturation(
                c.inputs.red, c.inputs.load_sweep, c.inputs.slo.latency_ms, service_of(c.typical)
            ),
        ),
        ("SLO burn", "red", lambda c: detect_slo_burn(c.inputs.red, c.inputs.slo, c.typical)),
        (
            "slow operation",
            "traces",
            lambda c: slow_operations(c.slow, c.typical, c.inputs.red, c.spans),
        ),
    ]


def _available(inputs: AnalysisInputs, need: str | None) -> bool:
    if need is None:
        return True
    if need in inputs.missing:
        return False
    if need == "traces":
        return bool(inputs.traces) and bool(inputs.slow_traces)
    if need == "load_sweep":
        return inputs.load_sweep is not None and not inputs.load_sweep.empty
    if need == "red":
        return inputs.red is not None and not inputs.red.empty
    return True


def diagnose_report(inputs: AnalysisInputs) -> Diagnosis:
    inputs.frames_ok()
    spans = spans_frame(inputs.traces)
    ctx = _Context(
        inputs,
        profiles(inputs.traces),
        profiles(inputs.slow_traces),
        spans,
        shard_table(spans, inputs.shards),
    )
    found: list[Finding] = []
    skipped: list[str] = []
    for name, need, detector in _detectors():
        if not _available(inputs, need):
            skipped.append(f"{name}: needs {need}, which this source does not provide")
            continue
        try:
            found.extend(detector(ctx))
        except (ValueError, KeyError, ZeroDivisionError, IndexError) as exc:
            # A detector tripping on odd data must not take the whole diagnosis down.
            skipped.append(f"{name}: failed on this data ({exc.__class__.__name__}: {exc})")
    return Diagnosis(link_causes(_dedupe(found)), tuple(skipped))


def diagnose(inputs: AnalysisInputs) -> list[Finding]:
    """All findings for the window, root causes first (see ``sort_findings``)."""
    return diagnose_report(inputs).findings


def _dedupe(findings: Sequence[Finding]) -> list[Finding]:
    best: dict[str, Finding] = {}
    for f in findings:
        if f.ref not in best or f.impact.score > best[f.ref].impact.score:
            best[f.ref] = f
    return list(best.values())


def _ratio(f: Finding) -> float:
    value = f.evidence.aggregate.get("ratio", 1.0)
    return float(value) if isinstance(value, int | float) else 1.0


def _compatible(cause: Finding, effect: Finding) -> bool:
    if frozenset({cause.kind, effect.kind}) in _MUTUAL and _ratio(cause) < _ratio(effect):
        return False
    if cause.subject.get("service.name", "") != effect.subject.get("service.name", "") and (
        "service.name" in cause.subject and "service.name" in effect.subject
    ):
        return False
    if cause.kind in _SERVICE_WIDE or effect.kind == "slo_burn":
        return True
    for key in _MATCH_KEYS:
        if (
            key in cause.subject
            and key in effect.subject
            and cause.subject[key] != effect.subject[key]
        ):
            return False
    # A shard-specific cause explains a route-level symptom only through that shard.
    return not (
        "app.shard.id" in cause.subject
        and "app.shard.id" not in effect.subject
        and effect.kind not in ("slo_burn", "saturation")
    )


def link_causes(findings: Sequence[Finding]) -> list[Finding]:
    """Point each symptom at its root cause (following chains: a slow shard → its pool
    wait → the routes reading it), then sort so root causes come first."""
    ranked = sort_findings(findings)
    alarms = [f for f in ranked if f.is_alarm]
    # The strongest alarm that can cause each finding, if any.
    parent: dict[str, Finding] = {}
    for effect in ranked:
        for cause in alarms:
            if (
                cause is not effect
                and effect.kind in EXPLAINS.get(cause.kind, frozenset())
                and _compatible(cause, effect)
            ):
                parent[effect.ref] = cause
                break
    order = {f.ref: i for i, f in enumerate(ranked)}
    explained: dict[str, str] = {}
    for f in ranked:
        path = [f.ref]
        while path[-1] in parent and parent[path[-1]].ref not in path:
            path.append(parent[path[-1]].ref)
        root = path[-1]
        if path[-1] in parent:  # a cycle: its highest-ranked member is the root
            cycle = path[path.index(parent[path[-1]].ref) :]
            root = min(cycle, key=order.__getitem__)
        if root != f.ref:
            explained[f.ref] = root
    symptoms: dict[str, list[str]] = {}
    for effect_ref, cause_ref in explained.items():
        symptoms.setdefault(cause_ref, []).append(effect_ref)
    linked = [
        f.with_evidence(
            explained_by=explained.get(f.ref),
            explains=tuple(sorted(symptoms.get(f.ref, ()))),
        )
        for f in ranked
    ]
    return sort_findings(linked)
