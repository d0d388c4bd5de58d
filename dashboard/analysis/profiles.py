"""Per-trace facts every detector needs (route, critical path, self-time), computed once.

An *operation* is what a span does, told apart from its siblings: service + span name +
the distinguishing attributes (``app.shard.id``), so "SELECT items on shard 2" and
"SELECT items on shard 3" are different operations while every request's span for one of
them is the same operation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from dashboard.analysis.critical_path import SpanTree, critical_time_by_span, self_times, span_tree
from dashboard.analysis.inputs import SERVER, entry_span, is_error, route_of
from dashboard.sources.model import Span, Trace

__all__ = [
    "CLIENT_WAIT_SPAN",
    "DISTINGUISHING",
    "Operation",
    "Profile",
    "TailImpact",
    "as_served",
    "operation_of",
    "profile",
    "profiles",
    "service_of",
    "tail_impact",
]

#: The instrumentation's child span for a wait on the client's request body
#: (docs/telemetry.md): the client's time, not an operation of the service.
CLIENT_WAIT_SPAN = "http receive"
#: Attributes that make one span name into distinct operations.
DISTINGUISHING: tuple[str, ...] = ("app.shard.id",)


@dataclass(frozen=True, order=True)
class Operation:
    service: str
    name: str
    attrs: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        extra = "".join(f" [{k}={v}]" for k, v in self.attrs)
        return f"{self.service}: {self.name}{extra}"

    @property
    def subject(self) -> dict[str, str]:
        return {"service.name": self.service, "span.name": self.name, **dict(self.attrs)}

    def attr(self, key: str) -> str | None:
        return dict(self.attrs).get(key)


def operation_of(span: Span) -> Operation:
    attrs = tuple(
        (k, str(span.attributes[k])) for k in DISTINGUISHING if span.attributes.get(k) is not None
    )
    return Operation(span.service, span.name, attrs)


@dataclass(frozen=True)
class Profile:
    trace: Trace
    tree: SpanTree
    entry: Span | None
    route: str
    #: Duration of the request as served: the entry server span (the critical path's
    #: length; see ``as_served``), else the root span.
    duration_ms: float
    error: bool
    #: span id → ms on the critical path / ms not covered by children.
    critical_ms: dict[str, float] = field(repr=False)
    self_ms: dict[str, float] = field(repr=False)
    by_operation: dict[Operation, tuple[float, int]] = field(repr=False)

    @property
    def trace_id(self) -> str:
        return self.trace.trace_id

    @property
    def is_entry_server(self) -> bool:
        return self.entry is not None and self.entry.kind == SERVER

    def critical_by_operation(self) -> dict[Operation, tuple[float, int]]:
        """operation → (ms on the critical path, number of its spans on it)."""
        return self.by_operation

    def spans(self) -> Iterable[Span]:
        return self.tree.spans.values()


def _by_operation(
    tree: SpanTree, critical_ms: dict[str, float]
) -> dict[Operation, tuple[float, int]]:
    out: dict[Operation, tuple[float, int]] = {}
    for sid, ms in critical_ms.items():
        if ms <= 0:
            continue
        op = operation_of(tree.spans[sid])
        total, calls = out.get(op, (0.0, 0))
        out[op] = (total + ms, calls + 1)
    return out


def as_served(trace: Trace, entry: Span | None) -> Trace:
    """The request as the service served it: the trace from its entry server span down.

    A caller's spans above the entry (a load generator's client span starting at the
    *intended* send time, a browser) hold time the service never saw: the caller's own
    backlog, the network. No fix inside the service removes it, so it is neither on the
    service's critical path nor in the duration tail shares are taken of (the RED frame,
    from server spans, measures the same thing). The caller's spans stay in the trace the
    evidence links to.
    """
    if entry is None or entry.kind != SERVER or entry.parent_span_id == "":
        return trace
    by_id = {s.span_id: s for s in trace.spans}
    above: set[str] = set()
    parent = entry.parent_span_id
    while parent in by_id and parent not in above:
        above.add(parent)
        parent = by_id[parent].parent_span_id
    if not above:
        return trace  # the parent was never received: the entry is the root already
    kept = [
        replace(s, parent_span_id="") if s.span_id == entry.span_id else s
        for s in trace.spans
        if s.span_id not in above
    ]
    return Trace(trace.trace_id, kept)


def profile(trace: Trace) -> Profile:
    entry = entry_span(trace)
    tree = span_tree(as_served(trace, entry))
    critical = critical_time_by_span(tree)
    if entry is not None:
        entry = tree.spans.get(entry.span_id, entry)
    return Profile(
        trace=trace,
        tree=tree,
        entry=entry,
        route=route_of(entry),
        duration_ms=(tree.root.end_ns - tree.root.start_ns) / 1e6,
        error=is_error(entry) if entry is not None else False,
        critical_ms=critical,
        self_ms=self_times(tree),
        by_operation=_by_operation(tree, critical),
    )


def profiles(traces: Sequence[Trace]) -> list[Profile]:
    return [profile(t) for t in traces if t.spans]


def service_of(group: Sequence[Profile]) -> str | None:
    """The service the requests entered, when they all entered the same one (a trace
    cut short at the window's edge, holding only its caller's span, does not count)."""
    services = {p.entry.service for p in group if p.is_entry_server and p.entry is not None}
    return services.pop() if len(services) == 1 else None


@dataclass(frozen=True)
class TailImpact:
    """How much a fix would take off the slow traces of the worst-hit route."""

    route: str
    #: Mean ms removed per slow trace of ``route``, and that as a share of their duration.
    ms: float
    score: float
    traces: int
    #: The slow traces the fix helps most (evidence).
    trace_ids: tuple[str, ...]
    by_route: dict[str, float]

    @property
    def on(self) -> str:
        return f"mean of the slowest {self.traces} {self.route}"


def tail_impact(
    slow: Sequence[Profile], excess: Callable[[Span, float], float], *, min_traces: int = 3
) -> TailImpact | None:
    """Sum ``excess(span, critical_ms)`` (the ms a fix removes from a span's critical-path
    time) over each slow trace; average per route; return the route where it is the
    largest share of the slow requests' duration."""
    per_route: dict[str, list[tuple[float, float, str]]] = {}
    for p in slow:
        saved = sum(excess(p.tree.spans[sid], ms) for sid, ms in p.critical_ms.items() if ms > 0)
        per_route.setdefault(p.route, []).append((saved, p.duration_ms, p.trace_id))
    best: TailImpact | None = None
    by_route: dict[str, float] = {}
    for route, rows in sorted(per_route.items()):
        if len(rows) < min_traces:
            continue
        ms = sum(r[0] for r in rows) / len(rows)
        tail = sum(r[1] for r in rows) / len(rows)
        by_route[route] = ms
        score = min(1.0, ms / tail) if tail > 0 else 0.0
        if best is None or score > best.score:
            ids = tuple(r[2] for r in sorted(rows, key=lambda r: -r[0]) if r[0] > 0)[:5]
            best = TailImpact(route, ms, score, len(rows), ids, by_route)
    return best
