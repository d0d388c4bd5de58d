"""The trace waterfall: one bar per span, offset from the trace start, as a Plotly figure."""

from __future__ import annotations

from collections.abc import Collection

import plotly.graph_objects as go

from dashboard.components.charts import ERROR, HIGHLIGHT, OK
from dashboard.sources.model import Trace

__all__ = ["MAX_SPANS", "ordered_spans", "waterfall_figure"]

#: Spans drawn at most; larger traces are capped with a note (a browser chokes on 10k bars).
MAX_SPANS = 500


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


def waterfall_figure(
    trace: Trace,
    critical: Collection[str] = (),
    order: list[tuple[int, int]] | None = None,
) -> go.Figure:
    """Bars in tree order; spans on the critical path in the highlight colour, failed
    spans in the error colour (and marked ✖ in the label, so colour is not the only cue)."""
    t0 = trace.start_ns
    order = (order if order is not None else ordered_spans(trace))[:MAX_SPANS]
    labels, starts, widths, colors, hover = [], [], [], [], []
    for n, (i, depth) in enumerate(order):
        s = trace.spans[i]
        failed = s.status_code == 2
        on_path = s.span_id in critical
        mark = "✖ " if failed else ("◆ " if on_path else "")
        labels.append(f"{n:>3} {'  ' * min(depth, 12)}{mark}{s.service}: {s.name}")
        starts.append((s.start_ns - t0) / 1e6)
        widths.append(max(s.duration_ms, 0.001))
        colors.append(ERROR if failed else (HIGHLIGHT if on_path else OK))
        hover.append(
            f"{s.service} · {s.name}<br>{s.duration_ms:.2f} ms"
            + ("<br>on the critical path" if on_path else "")
        )
    fig = go.Figure(
        go.Bar(
            y=labels,
            x=widths,
            base=starts,
            orientation="h",
            marker_color=colors,
            hovertext=hover,
            hoverinfo="text",
        )
    )
    fig.update_layout(
        height=max(200, 22 * len(order) + 60),
        margin={"l": 10, "r": 10, "t": 10, "b": 30},
        xaxis_title="ms since trace start",
        yaxis={"autorange": "reversed", "type": "category"},
    )
    return fig
