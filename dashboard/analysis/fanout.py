"""Fan-out shape: sibling reads that run one after another though they could run together
(the N+1 staircase), and the latency parallelism would save.

For every parent, its read children of one operation (same span name, ``SELECT`` or no
``db.operation.name``) form a group when there are ≥ 2. The group's *seriality* is
(union − longest) / (sum − longest) of their intervals: 0 when they all overlap (parallel),
1 when they follow each other (a staircase). A staircase (seriality ≥ ``STAIRCASE``)
could finish in its longest member's time, so it saves union − longest. Writes are left
out on purpose: ordered writes (a checkout) are usually sequential by design.

A route alarms when most of its fanning-out requests are staircases (≥ ``MIN_SHARE``,
binomial test against a 5 % background) and the saving is a real part of its tail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dashboard.analysis.findings import Evidence, Finding, Impact, severity_for
from dashboard.analysis.profiles import Profile
from dashboard.analysis.stats import ALPHA, binom_greater, confidence_from_p
from dashboard.sources.model import Span

__all__ = ["FanoutGroup", "detect_sequential_fanout", "fanout_groups"]

STAIRCASE = 0.8
MIN_SHARE = 0.5
MIN_GROUPS = 8
READ_OPERATIONS = frozenset({"SELECT", "GET", "MGET", "FIND", "SCAN", "QUERY"})


@dataclass(frozen=True)
class FanoutGroup:
    parent_id: str
    name: str
    spans: tuple[Span, ...]
    seriality: float
    #: ms parallel execution would save (union − longest; 0 when already parallel).
    saving_ms: float

    @property
    def sequential(self) -> bool:
        return self.seriality >= STAIRCASE


def _is_read(span: Span) -> bool:
    op = span.attributes.get("db.operation.name")
    is_db = span.attributes.get("db.system.name") is not None or "app.shard.id" in span.attributes
    return is_db and (op is None or str(op).upper() in READ_OPERATIONS)


def fanout_groups(p: Profile) -> list[FanoutGroup]:
    out: list[FanoutGroup] = []
    for parent_id, kids in p.tree.children.items():
        by_name: dict[str, list[Span]] = {}
        for k in kids:
            if _is_read(k):
                by_name.setdefault(k.name, []).append(k)
        for name, group in by_name.items():
            if len(group) < 2:
                continue
            durations = [s.end_ns - s.start_ns for s in group]
            total, longest = sum(durations), max(durations)
            union = _union(group)
            seriality = (union - longest) / (total - longest) if total > longest else 0.0
            out.append(
                FanoutGroup(
                    parent_id,
                    name,
                    tuple(group),
                    min(1.0, max(0.0, seriality)),
                    max(0.0, (union - longest) / 1e6),
                )
            )
    return out


def _union(spans: Sequence[Span]) -> int:
    total, cur_s, cur_e = 0, -1, -1
    for s in sorted(spans, key=lambda s: s.start_ns):
        if s.start_ns > cur_e:
            total += cur_e - cur_s
            cur_s, cur_e = s.start_ns, s.end_ns
        else:
            cur_e = max(cur_e, s.end_ns)
    return total + cur_e - cur_s


def _saving(p: Profile) -> float:
    return sum(g.saving_ms for g in fanout_groups(p) if g.sequential)


def detect_sequential_fanout(typical: Sequence[Profile], slow: Sequence[Profile]) -> list[Finding]:
    """One finding per route whose fan-outs are mostly staircases."""
    by_route: dict[str, list[FanoutGroup]] = {}
    for p in typical:
        by_route.setdefault(p.route, []).extend(fanout_groups(p))
    out: list[Finding] = []
    for route, groups in sorted(by_route.items()):
        if not route or len(groups) < MIN_GROUPS:
            continue
        seq = [g for g in groups if g.sequential]
        share = len(seq) / len(groups)
        if not seq:
            continue
        pval = binom_greater(len(seq), len(groups), 0.05)
        tail = [q for q in slow if q.route == route]
        tail_ms = sum(q.duration_ms for q in tail) / len(tail) if tail else 0.0
        saved = [_saving(q) for q in tail]
        saving = sum(saved) / len(saved) if saved else 0.0
        score = min(1.0, saving / tail_ms) if tail_ms > 0 else 0.0
        on = f"mean of the slowest {len(tail)} {route}"
        # A staircase in most requests slows the whole route, not only its tail; the few
        # slowest requests of a quiet route can owe their length to something else.
        usual = [q for q in typical if q.route == route]
        usual_ms = sum(q.duration_ms for q in usual) / len(usual) if usual else 0.0
        usual_saving = sum(_saving(q) for q in usual) / len(usual) if usual else 0.0
        if usual_ms > 0 and usual_saving / usual_ms > score:
            saving, score = usual_saving, min(1.0, usual_saving / usual_ms)
            on = f"mean of {len(usual)} typical {route}"
        significant = pval < ALPHA and share >= MIN_SHARE
        method, _, template = route.partition(" ")
        ids = tuple(
            q.trace_id
            for q, s in sorted(zip(tail, saved, strict=True), key=lambda x: -x[1])
            if s > 0
        )
        width = sum(len(g.spans) for g in seq) / len(seq)
        out.append(
            Finding(
                kind="sequential_fanout",
                subject={"http.request.method": method, "http.route": template},
                summary=(
                    f"{route} calls its {seq[0].name} fan-out (≈{width:.1f} queries) one after "
                    f"another in {share:.0%} of requests; in parallel they would save "
                    f"≈{saving:.1f} ms ({on})."
                ),
                impact=Impact(saving, "ms", on, score),
                confidence=confidence_from_p(pval, len(groups)),
                severity=severity_for(score, significant=significant),
                evidence=Evidence(
                    trace_ids=ids[:5],
                    aggregate={
                        "route": route,
                        "fanouts": len(groups),
                        "sequential": len(seq),
                        "mean_seriality": sum(g.seriality for g in groups) / len(groups),
                        "mean_width": width,
                    },
                ),
            )
        )
    return out
