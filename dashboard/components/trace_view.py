"""One trace: waterfall (colour per service, service boundaries, network time per hop) with
the critical path, self time, percentiles, attributes, logs.

Large traces stay responsive: the waterfall draws at most ``MAX_SPANS`` bars, the span
picker offers those same spans, percentiles are looked up for the ``RANKED_OPS`` operations
with the most time; the table (virtualised by Streamlit) still lists every span.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from dashboard.analysis.critical_path import critical_time_by_span, self_times, span_tree
from dashboard.analysis.servicemap import Hop, hops
from dashboard.components.logs_table import logs_table
from dashboard.components.waterfall import MAX_SPANS, ordered_spans, waterfall_figure
from dashboard.sources.model import Span, Trace
from dashboard.sources.query import LogQuery, TimeWindow
from dashboard.state import guard, load

__all__ = ["RANKED_OPS", "render_trace"]

RANKED_OPS = 15
_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUS = {0: "unset", 1: "ok", 2: "ERROR"}


def _trace_window(trace: Trace) -> TimeWindow:
    start = datetime.fromtimestamp(trace.start_ns / 1e9, UTC) - timedelta(minutes=1)
    end = datetime.fromtimestamp(max(s.end_ns for s in trace.spans) / 1e9, UTC)
    return TimeWindow(start, end + timedelta(minutes=1))


def _percentiles(trace: Trace, window: TimeWindow) -> dict[str, float]:
    """span id → percentile of its duration among same-operation spans in the window."""
    by_op: dict[tuple[str, str], list[Span]] = {}
    for s in trace.spans:
        by_op.setdefault((s.service, s.name), []).append(s)
    busiest = sorted(by_op.items(), key=lambda kv: -sum(s.duration_ms for s in kv[1]))
    out: dict[str, float] = {}
    for (service, op), spans in busiest[:RANKED_OPS]:
        durations = tuple(sorted({round(s.duration_ms, 6) for s in spans}))
        ranks = load.duration_ranks(window, service, op, durations).data
        lookup = dict(zip(ranks["duration_ms"], ranks["percentile"], strict=False))
        for s in spans:
            value = lookup.get(round(s.duration_ms, 6))
            if value is not None:
                out[s.span_id] = float(value)
    return out


def render_trace(trace: Trace, window: TimeWindow, selected_span: str | None = None) -> None:
    tree = span_tree(trace)
    critical = critical_time_by_span(tree)
    own = self_times(tree)
    errors = sum(1 for s in trace.spans if s.status_code == 2)
    services = sorted({s.service for s in trace.spans})
    crossings = hops(trace)
    network = {h.client.span_id: h for h in crossings} | {h.server.span_id: h for h in crossings}
    st.subheader(f"Trace {trace.trace_id}")
    cols = st.columns(5)
    cols[0].metric("Duration", f"{trace.duration_ms:.1f} ms")
    cols[1].metric("Spans", f"{len(trace.spans)}")
    cols[2].metric("Errors", f"{errors}")
    cols[3].metric("Services", f"{len(services)}")
    cols[4].metric(
        "Service hops",
        f"{len(crossings)}",
        help="client spans with a server child in another process; network time of each "
        "hop = client duration − server duration",
    )
    if tree.adjusted or tree.orphans or tree.dropped:
        st.caption(
            f"Tree repaired: {tree.adjusted} spans shifted for clock skew, {tree.orphans} "
            f"orphans attached to the root, {tree.dropped} dropped."
        )
    order = ordered_spans(trace)
    if len(order) > MAX_SPANS:
        st.info(
            f"This trace has {len(trace.spans)} spans: the waterfall shows the first "
            f"{MAX_SPANS} in tree order; the table below lists all of them."
        )
    st.caption(
        "Colour per service · ▸ and a dark tick: a service boundary (entered from another "
        "process) · ⇄ network time of a hop (client − server) · ◆ on the critical path "
        "(outlined) · ✖ failed span"
    )
    st.plotly_chart(waterfall_figure(trace, set(critical), order), key="waterfall")

    ranks: dict[str, float] = {}
    with guard():
        ranks = _percentiles(trace, window)
    position = {i: n for n, (i, _) in enumerate(order)}
    table = pd.DataFrame(
        [
            {
                "#": position.get(i, -1),
                "service": s.service,
                "operation": s.name,
                "kind": _KINDS.get(s.kind, str(s.kind)),
                "duration_ms": round(s.duration_ms, 3),
                "self_ms": round(own.get(s.span_id, 0.0), 3),
                "critical_ms": round(critical.get(s.span_id, 0.0), 3),
                "network_ms": (
                    round(network[s.span_id].network_ms, 3)
                    if s.span_id in network and network[s.span_id].client is s
                    else None
                ),
                "percentile": ranks.get(s.span_id),
                "status": _STATUS.get(s.status_code, str(s.status_code)),
                "span_id": s.span_id,
            }
            for i, s in enumerate(trace.spans)
        ]
    ).sort_values("#")
    st.dataframe(
        table,
        hide_index=True,
        key="spans",
        column_config={
            "percentile": st.column_config.NumberColumn(
                "percentile",
                help="share of same-operation spans in the window at or below it",
                format="p%.0f",
            ),
            "network_ms": st.column_config.NumberColumn(
                "network_ms",
                help="on a client span with a server child: client − server duration",
            ),
        },
    )
    _span_detail(trace, [trace.spans[i] for i, _ in order[:MAX_SPANS]], selected_span, network)

    st.markdown("#### Logs of this trace")
    with guard():
        logs = load.logs(LogQuery(window=_trace_window(trace), trace_id=trace.trace_id, limit=200))
        if logs:
            logs_table(logs, link_traces=False)
        else:
            st.caption("No logs carry this trace id.")


def _span_detail(
    trace: Trace, offered: list[Span], selected: str | None, network: dict[str, Hop]
) -> None:
    st.markdown("#### Span details")
    ids = [s.span_id for s in offered]
    if selected and selected not in ids:
        match = next((s for s in trace.spans if s.span_id == selected), None)
        if match is not None:
            offered, ids = [match, *offered], [match.span_id, *ids]
        else:
            st.warning(f"Span {selected} is not in this trace.")
    index = ids.index(selected) if selected in ids else 0
    by_id = {s.span_id: s for s in offered}
    chosen = st.selectbox(
        "Span",
        ids,
        index=index,
        format_func=lambda sid: f"{by_id[sid].service}: {by_id[sid].name} ({sid})",
        key="span_pick",
    )
    span = by_id[chosen]
    hop = network.get(span.span_id)
    if hop is not None:
        st.info(
            f"Network between {hop.client.service} and {hop.server.service}"
            f"{f' [{hop.server.instance}]' if hop.server.instance else ''}: "
            f"{hop.network_ms:.2f} ms (client {hop.client.duration_ms:.2f} ms − "
            f"server {hop.server.duration_ms:.2f} ms)",
            icon=":material/swap_horiz:",
        )
    resource = [f"{k}={v}" for k, v in sorted(span.resource.items()) if k != "service.name"]
    if resource:
        st.caption("Resource: " + ", ".join(resource))
    left, right = st.columns(2)
    left.markdown("**Attributes**")
    left.json(span.attributes, expanded=True)
    right.markdown(f"**Events** ({len(span.events)})")
    if span.events:
        right.json(span.events, expanded=True)
    else:
        right.caption("No events.")
