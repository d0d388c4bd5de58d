"""Where the time goes: each operation's share of the critical path in slow vs typical
traces of a route, and the Amdahl-style saving if it were as fast as in typical ones.

"SELECT items [shard 2]: 61 % of the slow requests' critical path, −38 ms if fixed" is one
row. The saving is an upper bound: shortening one span can let a parallel sibling become
critical. ``slow_operations`` turns the top row of each route into a ``slow_operation``
finding — an alarm only when the route's latency also rose during the window, because
every healthy service has *some* operation that dominates its tail.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import median

import pandas as pd

from dashboard.analysis.compare import rank_attributes, slow_selection
from dashboard.analysis.findings import Evidence, Finding, Impact, severity_for
from dashboard.analysis.profiles import CLIENT_WAIT_SPAN, Operation, Profile, operation_of
from dashboard.analysis.stats import ALPHA, shifted_later

__all__ = ["TIME_SHARE_COLUMNS", "slow_operations", "where_time_goes"]

TIME_SHARE_COLUMNS = [
    "route",
    "operation",
    "label",
    "slow_ms",
    "typical_ms",
    "slow_share",
    "typical_share",
    "slow_calls",
    "per_call_slow_ms",
    "per_call_typical_ms",
    "saving_ms",
]
#: A route's p95 must rise by this ratio and this many ms for slow_operation to alarm.
SHIFT_RATIO = 1.5
SHIFT_MIN_MS = 5.0
MIN_TRACES = 5


def _accumulate(
    group: Sequence[Profile],
) -> tuple[dict[Operation, list[float]], dict[Operation, list[float]], dict[Operation, int]]:
    """op → per-trace critical ms (0 when absent), per-call ms samples, total calls."""
    per_trace: dict[Operation, list[float]] = {}
    per_call: dict[Operation, list[float]] = {}
    calls: dict[Operation, int] = {}
    for i, p in enumerate(group):
        for op, (ms, n) in p.critical_by_operation().items():
            per_trace.setdefault(op, [0.0] * len(group))[i] = ms
            per_call.setdefault(op, []).append(ms / n)
            calls[op] = calls.get(op, 0) + n
    return per_trace, per_call, calls


def where_time_goes(slow: Sequence[Profile], typical: Sequence[Profile]) -> pd.DataFrame:
    """One row per (route, operation) with TIME_SHARE_COLUMNS, largest saving first."""
    rows: list[dict[str, object]] = []
    routes = sorted({p.route for p in slow})
    for route in routes:
        s_group = [p for p in slow if p.route == route]
        t_group = [p for p in typical if p.route == route]
        s_total = sum(p.duration_ms for p in s_group) / len(s_group)
        t_total = (sum(p.duration_ms for p in t_group) / len(t_group)) if t_group else float("nan")
        s_trace, s_call, s_calls = _accumulate(s_group)
        t_trace, _, _ = _accumulate(t_group)
        t_call = _own_time_per_call(t_group)
        for op, values in s_trace.items():
            slow_ms = sum(values) / len(s_group)
            typical_ms = sum(t_trace[op]) / len(t_group) if op in t_trace else 0.0
            per_call_slow = median(s_call[op])
            ref = median(t_call[op]) if len(t_call.get(op, [])) >= 3 else per_call_slow
            # Amdahl: the slow traces keep their calls, each as fast as a typical one (an
            # upper bound: a parallel sibling may become critical instead).
            saving = sum(
                max(0.0, ms - n * ref)
                for ms, n in zip(values, _calls_per_trace(s_group, op), strict=True)
            ) / len(s_group)
            rows.append(
                {
                    "route": route,
                    "operation": op,
                    "label": op.label,
                    "slow_ms": slow_ms,
                    "typical_ms": typical_ms,
                    "slow_share": slow_ms / s_total if s_total > 0 else 0.0,
                    "typical_share": typical_ms / t_total if t_group and t_total > 0 else 0.0,
                    "slow_calls": s_calls[op] / len(s_group),
                    "per_call_slow_ms": per_call_slow,
                    "per_call_typical_ms": ref,
                    "saving_ms": saving,
                }
            )
    frame = pd.DataFrame(rows, columns=TIME_SHARE_COLUMNS)
    return frame.sort_values(["saving_ms", "slow_ms"], ascending=False, ignore_index=True)


def _own_time_per_call(group: Sequence[Profile]) -> dict[Operation, list[float]]:
    """op → each of its spans' own time (not covered by children), on the critical path
    or not: how long the operation takes in these requests."""
    out: dict[Operation, list[float]] = {}
    for p in group:
        for sid, s in p.tree.spans.items():
            out.setdefault(operation_of(s), []).append(p.self_ms.get(sid, 0.0))
    return out


def _calls_per_trace(group: Sequence[Profile], op: Operation) -> list[int]:
    return [p.critical_by_operation().get(op, (0.0, 0))[1] for p in group]


def slow_operations(
    slow: Sequence[Profile],
    typical: Sequence[Profile],
    red: pd.DataFrame | None,
    spans: pd.DataFrame | None = None,
) -> list[Finding]:
    """Per route, the operation whose fix would save the most tail latency. With the
    sampled ``spans`` (SPAN_COLUMNS), the evidence also says what sets the operation's
    slowest spans apart (``compare.rank_attributes``)."""
    table = where_time_goes(slow, typical)
    findings: list[Finding] = []
    for key, rows in table.groupby("route", sort=True):
        route = str(key)
        s_group = [p for p in slow if p.route == route]
        if not route or len(s_group) < MIN_TRACES or rows.empty:
            continue  # no route: not an HTTP request we can name
        top = rows.iloc[0]
        tail_ms = sum(p.duration_ms for p in s_group) / len(s_group)
        saving = float(top["saving_ms"])
        score = min(1.0, saving / tail_ms) if tail_ms > 0 else 0.0
        rose, before, after = _route_shift(red, route)
        op: Operation = top["operation"]
        # The request's own time (its server span with no child running) is the handler's
        # code or a wait for the loop: event_loop_blocking tells those apart; a wait for the
        # client's body is the client's. Both are reported, never raised on their own.
        own = op.name == CLIENT_WAIT_SPAN or (
            op.name == route
            and any(p.entry is not None and p.entry.service == op.service for p in s_group)
        )
        method, _, template = route.partition(" ")
        subject = {"http.request.method": method, "http.route": template, **op.subject}
        ids = tuple(
            p.trace_id
            for p in sorted(s_group, key=lambda p: -p.critical_by_operation().get(op, (0, 0))[0])
        )[:5]
        change = (
            f"; the route's p95 rose from {before:.1f} to {after:.1f} ms during the window"
            if rose
            else ""
        )
        findings.append(
            Finding(
                kind="slow_operation",
                subject=subject,
                summary=(
                    f"{op.label} takes {top['slow_share']:.0%} of the critical path of the slowest "
                    f"{route} requests ({top['slow_ms']:.1f} ms); as fast as in typical requests "
                    f"it would save ≈{saving:.1f} ms{change}."
                ),
                impact=Impact(saving, "ms", f"mean of the slowest {len(s_group)} {route}", score),
                confidence=0.9 if rose and not own else 0.5,
                severity=severity_for(score, significant=rose and not own),
                evidence=Evidence(
                    trace_ids=ids,
                    notes=_what_differs(spans, op),
                    aggregate={
                        "route": route,
                        "time_share": rows.head(5)
                        .drop(columns=["operation", "route"])
                        .round(3)
                        .to_dict("records"),
                        "p95_before_ms": before,
                        "p95_after_ms": after,
                    },
                ),
            )
        )
    return findings


#: Span columns worth comparing between an operation's slowest spans and the rest.
_COMPARE = ("route", "shard_id", "cache_hit", "error", "pool_wait_ms", "db_operation", "service")


def _what_differs(spans: pd.DataFrame | None, op: Operation) -> tuple[str, ...]:
    if spans is None or spans.empty:
        return ()
    same = spans[(spans["name"] == op.name) & (spans["service"] == op.service)]
    slowest, rest = slow_selection(same, op.name)
    if len(slowest) < MIN_TRACES or len(rest) < MIN_TRACES:
        return ()
    diffs = [d for d in rank_attributes(slowest, rest, _COMPARE) if d.p_value < ALPHA]
    return tuple(
        f"the slowest 10 % of {op.name} spans differ most in {d.describe()}" for d in diffs[:2]
    )


def _route_shift(red: pd.DataFrame | None, route: str) -> tuple[bool, float, float]:
    if red is None or red.empty:
        return False, float("nan"), float("nan")
    series = red[red["route"] == route].sort_values("ts")["p95_ms"]
    return shifted_later(series, ratio=SHIFT_RATIO, min_delta=SHIFT_MIN_MS)
