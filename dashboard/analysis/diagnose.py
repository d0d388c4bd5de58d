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
from dashboard.analysis.replicas import (
    detect_replica_down,
    detect_retry_storm,
    detect_slow_replicas,
    upstream_of,
)
from dashboard.analysis.servicemap import calls_frame
from dashboard.analysis.shards import (
    cluster_factor,
    detect_failing_shards,
    detect_hot_shards,
    detect_slow_shards,
    shard_owners,
    shard_table,
)
from dashboard.analysis.slo import detect_slo_burn
from dashboard.analysis.time_share import slow_operations

__all__ = ["EXPLAINS", "Diagnosis", "diagnose", "diagnose_report", "link_causes", "storm_share"]

#: cause kind → the kinds of symptom it can produce.
EXPLAINS: dict[str, frozenset[str]] = {
    "hot_shard": frozenset({"slow_shard", "pool_contention", "slow_operation", "slo_burn"}),
    # Behind another service, a shard's failures and timeouts come back as 5xx answers and
    # late ones, which the callers retry: their resends are its symptom.
    "slow_shard": frozenset(
        {"hot_shard", "pool_contention", "slow_operation", "slo_burn", "saturation", "retry_storm"}
    ),
    "failing_shard": frozenset({"slow_operation", "slo_burn", "retry_storm"}),
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
    # A replica's slowness shows on every shard it queries and every route calling it.
    "slow_replica": frozenset(
        {
            "slow_shard",
            "hot_shard",
            "pool_contention",
            "slow_operation",
            "slo_burn",
            "saturation",
            "event_loop_blocking",
        }
    ),
    # A dead replica's peers take its load; its refused calls are retried (or fail); while
    # connections to it hang it looks slow.
    "replica_down": frozenset(
        {
            "slow_replica",
            "retry_storm",
            "pool_contention",
            "slow_operation",
            "slo_burn",
            "saturation",
        }
    ),
    # Retries multiply the callee's load: its pools queue, its shards and replicas slow
    # down, its routes slow down; the caller's loop is busy sending them (back to back).
    "retry_storm": frozenset(
        {
            "pool_contention",
            "hot_shard",
            "slow_shard",
            "slow_replica",
            "event_loop_blocking",
            "slow_operation",
            "slo_burn",
            "saturation",
        }
    ),
}
#: A shard or replica is where a retry storm's failures come from — its cause, not its
#: symptom — when at least this share of the storm's failed attempts reached it.
STORM_SOURCE_SHARE = 0.5
#: The storm's symptoms it may explain only when its failures are known to come from
#: elsewhere (these can also be the storm's source: a slow shard times calls out).
_STORM_NEEDS_PATHS = frozenset({"slow_shard", "slow_replica"})
_SHARD_KINDS = frozenset({"hot_shard", "slow_shard", "failing_shard", "pool_contention"})
#: Subject keys that must agree for a cause to explain a symptom (when both have them).
_MATCH_KEYS = ("app.shard.id", "http.route", "app.cache.name", "service.instance.id")
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
class _Shards:
    """The shards of one owning service: its shard spans, their per-shard table and the
    complete counts (SHARD_COLUMNS) that are its own. ``service`` is None when only one
    service has shards in the window: the findings then name the shard alone."""

    service: str | None
    spans: pd.DataFrame
    table: pd.DataFrame
    counts: pd.DataFrame | None


@dataclass(frozen=True)
class _Context:
    inputs: AnalysisInputs
    typical: list[Profile]
    slow: list[Profile]
    #: SPAN_COLUMNS rows of the typical (random) sample.
    spans: pd.DataFrame
    #: One entry per service that owns shards (one, unnamed, in a single-service window).
    shards: list[_Shards]
    #: CALL_COLUMNS rows (client/server pairs, shard and cache calls) of the typical sample.
    calls: pd.DataFrame


def _shard_views(spans: pd.DataFrame, counts: pd.DataFrame | None) -> list[_Shards]:
    """Shard ids are per service (the catalog's shard 1 is not the orders service's): with
    several owners each is analysed apart. Counts that do not say whose shard they are
    (no ``service`` column) cannot be split, and the sampled spans count instead."""
    owners = shard_owners(spans)
    by_service = counts is not None and "service" in counts.columns

    def own(service: str | None) -> pd.DataFrame | None:
        if counts is None or service is None:
            return counts
        if by_service:
            return counts[counts["service"].astype(str) == service]
        return counts if len(owners) <= 1 else None

    if len(owners) <= 1:
        c = own(owners[0] if owners else None)
        return [_Shards(None, spans, shard_table(spans, c), c)]
    views = []
    for service in owners:
        mine = spans[spans["service"] == service]
        c = own(service)
        views.append(_Shards(service, mine, shard_table(mine, c), c))
    return views


def _per_owner(
    detect: Callable[[_Context, _Shards], list[Finding]],
) -> Callable[[_Context], list[Finding]]:
    """Run a shard detector once per owning service; a named owner's findings can explain
    symptoms in its callers (``affects_services``), like a replica's."""

    def run(c: _Context) -> list[Finding]:
        out = []
        for view in c.shards:
            found = detect(c, view)
            if view.service is not None:
                reach = upstream_of(c.calls, view.service)
                found = [
                    f.with_evidence(aggregate={**f.evidence.aggregate, "affects_services": reach})
                    for f in found
                ]
            out.extend(found)
        return out

    return run


def _detectors() -> list[tuple[str, str | None, Callable[[_Context], list[Finding]]]]:
    """(name, the input it cannot run without, the detector)."""

    return [
        (
            "hot shard",
            None,
            _per_owner(lambda c, v: detect_hot_shards(v.table, v.service, cluster_factor(v.spans))),
        ),
        (
            "slow shard",
            "traces",
            _per_owner(lambda c, v: detect_slow_shards(v.spans, c.slow, v.table, v.service)),
        ),
        (
            "failing shard",
            None,
            _per_owner(lambda c, v: detect_failing_shards(v.table, c.typical, v.service)),
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
            _per_owner(lambda c, v: detect_pool_contention(v.spans, c.slow, v.counts, v.service)),
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
        ("slow replica", "traces", lambda c: detect_slow_replicas(c.calls, c.slow)),
        (
            "replica down",
            None,
            lambda c: detect_replica_down(
                c.calls, c.typical, c.inputs.ejections, c.inputs.start_ns
            ),
        ),
        ("retry storm", None, lambda c: detect_retry_storm(c.calls, c.inputs.traces)),
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
        _shard_views(spans, inputs.shards),
        calls_frame(inputs.traces),
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


def _services(cause: Finding) -> list[str] | None:
    """The services a cause can affect, when it says (a replica's callers, transitively)."""
    value = cause.evidence.aggregate.get("affects_services")
    return [str(v) for v in value] if isinstance(value, list | tuple) else None


def storm_share(storm: Finding, other: Finding) -> float | None:
    """The share of a retry storm's failed attempts that reached ``other``'s shard, or went
    to its replica (of the storm's callee); None when the storm's evidence does not say
    (no failed attempt in the sample, findings read from older JSON) or ``other`` names
    neither a shard nor a replica of the callee."""
    agg = storm.evidence.aggregate
    failed = agg.get("failed_attempts")
    if not isinstance(failed, int) or failed <= 0:
        return None
    subject = other.subject
    if "app.shard.id" in subject:
        rows = agg.get("failed_share_through_shards")
        if not isinstance(rows, list):
            return None
        service = subject.get("service.name")
        return max(
            (
                float(r.get("share", 0.0))
                for r in rows
                if isinstance(r, dict)
                and str(r.get("app.shard.id")) == subject["app.shard.id"]
                and (service is None or r.get("service.name") == service)
            ),
            default=0.0,
        )
    callee = storm.subject.get("app.upstream.service")
    if "service.instance.id" in subject and subject.get("service.name") == callee:
        by = agg.get("failed_share_by_instance")
        if not isinstance(by, dict):
            return None
        return float(by.get(subject["service.instance.id"], 0.0))
    return None


def _storm_compatible(cause: Finding, effect: Finding) -> bool:
    """A shard or replica explains a retry storm only when the storm's failures went
    through it; the storm explains a shard's or replica's symptoms only when they did
    not (a hiccup before any query, refusals elsewhere): one direction or the other."""
    if effect.kind == "retry_storm" and (
        cause.kind in _SHARD_KINDS or cause.kind == "replica_down"
    ):
        share = storm_share(effect, cause)
        return share is None or share >= STORM_SOURCE_SHARE
    if cause.kind == "retry_storm" and (
        effect.kind in _SHARD_KINDS or effect.kind in _STORM_NEEDS_PATHS
    ):
        share = storm_share(cause, effect)
        if share is None:
            return effect.kind not in _STORM_NEEDS_PATHS
        return share < STORM_SOURCE_SHARE
    return True


def _compatible(cause: Finding, effect: Finding) -> bool:
    if not _storm_compatible(cause, effect):
        return False
    if frozenset({cause.kind, effect.kind}) in _MUTUAL and _ratio(cause) < _ratio(effect):
        return False
    if "service.name" in cause.subject and "service.name" in effect.subject:
        reach = _services(cause)
        if reach is None and cause.subject["service.name"] != effect.subject["service.name"]:
            return False
        if reach is not None and effect.subject["service.name"] not in reach:
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
        and effect.kind not in ("slo_burn", "saturation", "retry_storm")
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
