"""The trace waterfall: one bar per span, offset from the trace start, coloured by service,
with the service boundaries and the network time of each hop marked, as a Plotly figure."""

from __future__ import annotations

from collections.abc import Collection

import plotly.graph_objects as go

from dashboard.analysis.inputs import CLIENT, SERVER
from dashboard.analysis.servicemap import hops
from dashboard.components.charts import ERROR, HIGHLIGHT, PALETTE
from dashboard.sources.model import Trace

__all__ = ["MAX_SPANS", "SERVICE_PALETTE", "ordered_spans", "service_colours", "waterfall_figure"]

#: Spans drawn at most; larger traces are capped with a note (a browser chokes on 10k bars).
MAX_SPANS = 500
#: Service colours: the palette without the error and highlight colours, plus greys.
SERVICE_PALETTE = (
    *(c for c in PALETTE if c not in (ERROR, HIGHLIGHT)),
    "#999999",
    "#5D5D5D",
)
BOUNDARY = "#333333"


def ordered_spans(trace: Trace) -> list[tuple[int, int]]:
    """(index into trace.spans, depth) in depth-first order, children by start time."""
    ids = {s.span_id for s in trace.spans}
    children: dict[str, list[int]] = {}
    roots: list[int] = []
    for i, s in enumerate(trace.spans):
        if s.parent_span_id and s.parent_span_id in ids and s.parent_span_id != s.span_id:
            children.setdefault(s.parent_span_id, []).append(i)
        else:
            roots.append(i)
    out: list[tuple[int, int]] = []
    seen: set[int] = set()
    stack = [(i, 0) for i in sorted(roots, key=lambda i: trace.spans[i].start_ns, reverse=True)]
    while stack:
        i, depth = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        out.append((i, depth))
        kids = children.get(trace.spans[i].span_id, [])
        stack.extend(
            (k, depth + 1)
            for k in sorted(kids, key=lambda k: trace.spans[k].start_ns, reverse=True)
        )
    return out


def service_colours(services: Collection[str]) -> dict[str, str]:
    """A colour per service, stable for a sorted set; never the error or highlight colour,
    which keep their meaning (a failed span, the critical path)."""
    palette = SERVICE_PALETTE
    return {svc: palette[i % len(palette)] for i, svc in enumerate(sorted(services))}


def waterfall_figure(
    trace: Trace,
    critical: Collection[str] = (),
    order: list[tuple[int, int]] | None = None,
) -> go.Figure:
    """Bars in tree order, coloured by service (a legend names them). A span entered from
    another process (a server span under a client span, or a child of another service) is
    a service boundary: ▸ in its label and a dark tick at its start. Spans on the critical
    path are outlined in the highlight colour (◆ in the label); failed spans are filled in
    the error colour (✖), so colour is never the only cue. A client span with a server child
    shows the network time between them (client − server duration) in its label."""
    t0 = trace.start_ns
    order = (order if order is not None else ordered_spans(trace))[:MAX_SPANS]
    by_id = {s.span_id: s for s in trace.spans}
    network = {h.client.span_id: h for h in hops(trace)}
    colours = service_colours({s.service for s in trace.spans})
    labels, starts, widths, fills, outlines, outline_widths, hover = [], [], [], [], [], [], []
    ticks: list[tuple[int, float]] = []
    for n, (i, depth) in enumerate(order):
        s = trace.spans[i]
        failed = s.status_code == 2
        on_path = s.span_id in critical
        parent = by_id.get(s.parent_span_id)
        boundary = parent is not None and (
            parent.service != s.service or (s.kind == SERVER and parent.kind == CLIENT)
        )
        mark = "✖ " if failed else ("◆ " if on_path else "")
        enter = "▸ " if boundary else ""
        hop = network.get(s.span_id)
        net = f"  ⇄ {hop.network_ms:.2f} ms net" if hop is not None else ""
        labels.append(f"{n:>3} {'  ' * min(depth, 12)}{enter}{mark}{s.service}: {s.name}{net}")
        start = (s.start_ns - t0) / 1e6
        starts.append(start)
        widths.append(max(s.duration_ms, 0.001))
        fills.append(ERROR if failed else colours[s.service])
        outlines.append(HIGHLIGHT if on_path else "rgba(0,0,0,0)")
        outline_widths.append(3 if on_path else 0)
        if boundary:
            ticks.append((n, start))
        hover.append(
            f"{s.service}{f' [{s.instance}]' if s.instance else ''} · {s.name}"
            f"<br>{s.duration_ms:.2f} ms"
            + (f"<br>called from {parent.service}" if boundary and parent is not None else "")
            + (
                f"<br>network (client − server): {hop.network_ms:.2f} ms to {hop.server.service}"
                if hop is not None
                else ""
            )
            + ("<br>on the critical path" if on_path else "")
        )
    fig = go.Figure(
        go.Bar(
            y=labels,
            x=widths,
            base=starts,
            orientation="h",
            marker={
                "color": fills,
                "line": {"color": outlines, "width": outline_widths},
            },
            hovertext=hover,
            hoverinfo="text",
            showlegend=False,
        )
    )
    for service, colour in colours.items():  # the legend: one entry per service
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                marker={"color": colour, "size": 10, "symbol": "square"},
                name=service,
                showlegend=len(colours) > 1,
            )
        )
    for n, start in ticks:
        fig.add_shape(
            type="line",
            x0=start,
            x1=start,
            y0=n - 0.5,
            y1=n + 0.5,
            line={"color": BOUNDARY, "width": 3},
        )
    fig.update_layout(
        height=max(200, 22 * len(order) + 60),
        margin={"l": 10, "r": 10, "t": 10, "b": 30},
        xaxis_title="ms since trace start",
        yaxis={"autorange": "reversed", "type": "category", "categoryarray": labels},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
        barmode="overlay",
    )
    return fig
