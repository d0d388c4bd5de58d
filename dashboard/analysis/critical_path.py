"""Critical path and self-time of one trace.

The critical path is the chain of work that determined when the trace finished: walking
back from the root's end, take the child that finished last, recurse into it, then
continue in the parent before that child started (Jaeger UI's algorithm). Parallel
children that finished earlier are off the path. Real traces are untidy, so the tree is
repaired first:

* a span whose parent is missing is attached to the root (its time still counts);
* a child from another service that does not fit inside its parent is clock skew: the
  child and its subtree are shifted to the middle of the parent, as Jaeger's clock-skew
  adjuster does; a same-service child that overhangs is clipped; a child entirely outside
  its parent after that is dropped (it cannot have delayed the parent);
* duplicated span ids keep the first span; cycles are broken at the root.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, replace

from dashboard.sources.model import Span, Trace

__all__ = [
    "Segment",
    "SpanTree",
    "critical_path",
    "critical_time_by_span",
    "self_times",
    "span_tree",
]


@dataclass(frozen=True)
class Segment:
    """A stretch of the critical path spent in ``span``'s own code (not in a child)."""

    span: Span
    start_ns: int
    end_ns: int

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


@dataclass(frozen=True)
class SpanTree:
    """A trace as a repaired tree: span times adjusted for skew, children by span id."""

    root: Span
    spans: dict[str, Span]
    children: dict[str, list[Span]]
    #: Spans moved (skew) or clipped to fit their parent, and spans dropped.
    adjusted: int
    dropped: int
    orphans: int


def span_tree(trace: Trace) -> SpanTree:
    if not trace.spans:
        raise ValueError(f"trace {trace.trace_id} has no spans")
    index: dict[str, Span] = {}
    for s in trace.spans:
        index.setdefault(s.span_id, s)
    spans = list(index.values())
    roots = [
        s for s in spans if s.parent_span_id in ("", s.span_id) or s.parent_span_id not in index
    ]
    true_roots = [s for s in roots if s.parent_span_id in ("", s.span_id)]
    pool = true_roots or roots or spans
    root = min(pool, key=lambda s: (s.start_ns - s.end_ns, s.start_ns, s.span_id))
    root_ids = {id(s) for s in roots}
    raw_children: dict[str, list[Span]] = {}
    for s in spans:
        if s is root:
            continue
        parent = root.span_id if id(s) in root_ids else s.parent_span_id
        raw_children.setdefault(parent, []).append(s)
    orphans = sum(1 for s in roots if s is not root)

    fixed: dict[str, Span] = {root.span_id: root}
    children: dict[str, list[Span]] = {}
    adjusted = dropped = 0
    gone: set[str] = set()
    # Top-down: (span as adjusted, shift inherited from moved ancestors).
    stack: list[tuple[Span, int]] = [(root, 0)]
    while stack:
        up, shift = stack.pop()
        for raw in raw_children.get(up.span_id, []):
            if raw.span_id in fixed:
                continue
            child, own_shift, changed = _fit(up, raw, shift)
            if child is None:
                lost = _descendants(raw, raw_children)
                gone.update(lost)
                dropped += len(lost)
                continue
            adjusted += changed
            fixed[child.span_id] = child
            children.setdefault(up.span_id, []).append(child)
            stack.append((child, own_shift))
    # Spans never reached (a parent cycle) hang off the root.
    for s in spans:
        if s.span_id not in fixed and s.span_id not in gone:
            child, _, changed = _fit(root, s, 0)
            if child is None:
                dropped += 1
                continue
            adjusted += changed
            orphans += 1
            fixed[child.span_id] = child
            children.setdefault(root.span_id, []).append(child)
    return SpanTree(root, fixed, children, adjusted, dropped, orphans)


def _fit(parent: Span, raw: Span, shift: int) -> tuple[Span | None, int, int]:
    start, end = raw.start_ns + shift, raw.end_ns + shift
    changed = 1 if shift else 0
    if end < start:
        end = start
    if start < parent.start_ns or end > parent.end_ns:
        dur, pdur = end - start, parent.end_ns - parent.start_ns
        if raw.service != parent.service and dur <= pdur:
            centre = parent.start_ns + (pdur - dur) // 2
            shift += centre - start
            start, end = centre, centre + dur
        else:
            start, end = max(start, parent.start_ns), min(end, parent.end_ns)
            if end < start:
                return None, shift, 0
        changed = 1
    child = raw if not changed else replace(raw, start_ns=start, end_ns=end)
    return child, shift, changed


def _descendants(span: Span, raw_children: dict[str, list[Span]]) -> set[str]:
    """``span`` and everything below it (ids)."""
    seen, stack = {span.span_id}, [span]
    while stack:
        for c in raw_children.get(stack.pop().span_id, []):
            if c.span_id not in seen:
                seen.add(c.span_id)
                stack.append(c)
    return seen


def critical_path(trace: Trace | SpanTree) -> list[Segment]:
    """Segments in time order; their durations sum to the root span's duration."""
    tree = trace if isinstance(trace, SpanTree) else span_tree(trace)
    by_end = {
        pid: sorted(kids, key=lambda s: (s.end_ns, s.start_ns))
        for pid, kids in tree.children.items()
    }
    ends = {pid: [s.end_ns for s in kids] for pid, kids in by_end.items()}
    segments: list[Segment] = []
    # Frames: (span, walk back from time t, consider only children with index < hi).
    stack: list[tuple[Span, int, int]] = [
        (tree.root, tree.root.end_ns, len(by_end.get(tree.root.span_id, [])))
    ]
    while stack:
        span, t, hi = stack.pop()
        kids = by_end.get(span.span_id, [])
        j = bisect.bisect_right(ends.get(span.span_id, []), t, 0, hi) - 1
        if j < 0:
            if span.start_ns < t:
                segments.append(Segment(span, span.start_ns, t))
            continue
        child = kids[j]
        if child.end_ns < t:
            segments.append(Segment(span, child.end_ns, t))
        stack.append((span, child.start_ns, j))
        stack.append((child, child.end_ns, len(by_end.get(child.span_id, []))))
    segments.sort(key=lambda g: (g.start_ns, g.end_ns))
    return segments


def critical_time_by_span(trace: Trace | SpanTree) -> dict[str, float]:
    """span id → ms the span itself spent on the critical path."""
    out: dict[str, float] = {}
    for g in critical_path(trace):
        out[g.span.span_id] = out.get(g.span.span_id, 0.0) + g.duration_ms
    return out


def self_times(trace: Trace | SpanTree) -> dict[str, float]:
    """span id → ms of the span's duration not covered by any of its children."""
    tree = trace if isinstance(trace, SpanTree) else span_tree(trace)
    return {
        sid: (s.end_ns - s.start_ns - _union_ns(tree.children.get(sid, []))) / 1e6
        for sid, s in tree.spans.items()
    }


def _union_ns(spans: Iterable[Span]) -> int:
    total, cur_start, cur_end = 0, None, None
    for s in sorted(spans, key=lambda s: s.start_ns):
        if cur_end is None or s.start_ns > cur_end:
            if cur_end is not None and cur_start is not None:
                total += cur_end - cur_start
            cur_start, cur_end = s.start_ns, s.end_ns
        else:
            cur_end = max(cur_end, s.end_ns)
    if cur_end is not None and cur_start is not None:
        total += cur_end - cur_start
    return total
