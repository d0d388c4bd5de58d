"""The service map as a Plotly figure: callers left, callees right, an arrow per edge.

Nodes sit in columns by call depth (the entry point first, shards and caches after the
services that query them); a service's replicas stack together inside a shaded box with its
name. Each edge is an arrow from caller to callee labelled with its rate, error rate and
p95 (in a dense map only the calls between services, the outliers and the picked edge are
labelled; every edge has its numbers on hover); an edge that stands out is drawn thick in
the highlight (slow) or error (failing) colour and named in the label, so colour is not
the only cue. The edge's midpoint is a marker carrying the edge key, which is what a click
or box selection returns; the picked edge is drawn thicker with a larger marker.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go

from dashboard.analysis.servicemap import Edge, Node, ServiceMap
from dashboard.components.charts import ERROR, HIGHLIGHT, OK
from dashboard.components.waterfall import service_colours

__all__ = ["DENSE", "layout", "service_map_figure"]

_MUTED = "#8C8C8C"
#: More edges than this: only calls between services, outliers and the picked edge are
#: labelled on the figure.
DENSE = 12
_SYMBOL = {
    "service": "circle",
    "instance": "circle",
    "shard": "square",
    "cache": "diamond",
    "external": "triangle-right",
}


def _depths(nodes: list[Node], edges: list[Edge]) -> dict[str, int]:
    """Longest call depth from an entry node (bounded relaxation: cycles cannot loop)."""
    depth = {n.id: 0 for n in nodes}
    calls = [(e.source, e.target) for e in edges if e.kind == "http" and e.source != e.target]
    for _ in range(len(nodes)):
        changed = False
        for s, t in calls:
            if depth[t] < depth[s] + 1:
                depth[t] = depth[s] + 1
                changed = True
        if not changed:
            break
    last = max((depth[n.id] for n in nodes if n.kind not in ("shard", "cache")), default=0)
    for n in nodes:
        if n.kind in ("shard", "cache"):
            callers = [depth[e.source] for e in edges if e.target == n.id]
            depth[n.id] = max(callers, default=last) + 1
    return depth


#: How close (in rows) an edge may pass a node it does not touch; column shifts tried.
_CLEARANCE = 0.3
_SHIFTS = (0.0, -0.5, 0.5, -1.0, 1.0, -1.5, 1.5, -2.0, 2.0)


def layout(smap: ServiceMap) -> dict[str, tuple[float, float]]:
    """Node id → (x, y): columns by depth, replicas of a service next to each other; a
    column an edge skips over is shifted up or down so the edge does not run through it."""
    depth = _depths(smap.nodes, smap.edges)
    columns: dict[int, list[Node]] = {}
    for n in smap.nodes:
        columns.setdefault(depth[n.id], []).append(n)
    out: dict[str, tuple[float, float]] = {}
    for x, members in sorted(columns.items()):
        members.sort(key=lambda n: (n.kind in ("shard", "cache"), n.service, n.kind, n.id))
        count = len(members)
        for i, n in enumerate(members):
            out[n.id] = (float(x), (count - 1) / 2.0 - i)
    for x, members in sorted(columns.items()):
        skipping = [
            (out[e.source], out[e.target])
            for e in smap.edges
            if min(out[e.source][0], out[e.target][0]) < x < max(out[e.source][0], out[e.target][0])
        ]
        if not skipping:
            continue
        for shift in _SHIFTS:
            if all(_clear(out[n.id][1] + shift, x, skipping) for n in members):
                for n in members:
                    out[n.id] = (out[n.id][0], out[n.id][1] + shift)
                break
    return out


def _clear(
    y: float, x: float, lines: list[tuple[tuple[float, float], tuple[float, float]]]
) -> bool:
    for (x0, y0), (x1, y1) in lines:
        at = y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        if abs(at - y) < _CLEARANCE:
            return False
    return True


def _colours(nodes: list[Node]) -> dict[str, str]:
    return service_colours({n.service for n in nodes if n.kind != "external"})


def _edge_colour(e: Edge) -> str:
    return {"failing": ERROR, "slow": HIGHLIGHT}.get(e.status, _MUTED)


def _width(e: Edge, top_rate: float) -> float:
    """1–5 px by rate (log scale), thicker when it stands out."""
    share = math.log1p(max(e.rate_rps, 0.0)) / math.log1p(max(top_rate, 1e-9)) if top_rate else 0
    return 1.0 + 3.0 * min(max(share, 0.0), 1.0) + (2.0 if e.status != "ok" else 0.0)


def service_map_figure(smap: ServiceMap, selected: str | None = None) -> go.Figure:
    pos = layout(smap)
    colour = _colours(smap.nodes)
    fig = go.Figure()
    _service_boxes(fig, smap.nodes, pos, colour)
    top_rate = max((e.rate_rps for e in smap.edges if math.isfinite(e.rate_rps)), default=0.0)
    # Labels on calls between services, on edges that stand out and on the picked one; the
    # fan of replica → shard edges would bury them (their numbers are in the hover).
    dense = len(smap.edges) > DENSE
    mid_x, mid_y, mid_text, mid_hover, mid_key, mid_colour = [], [], [], [], [], []
    mid_size: list[int] = []
    for e in smap.edges:
        (x0, y0), (x1, y1) = pos[e.source], pos[e.target]
        chosen = e.key == selected
        fig.add_annotation(
            x=x1 - 0.08 * (x1 - x0),
            y=y1 - 0.08 * (y1 - y0),
            ax=x0,
            ay=y0,
            xref="x",
            yref="y",
            axref="x",
            ayref="y",
            showarrow=True,
            arrowhead=2,
            arrowsize=1,
            arrowwidth=_width(e, top_rate) + (3.0 if chosen else 0.0),
            arrowcolor=_edge_colour(e),
            opacity=0.9,
            text="",
        )
        mx, my = x0 + 0.55 * (x1 - x0), y0 + 0.55 * (y1 - y0)
        flag = f"{e.status.upper()} · " if e.status != "ok" else ""
        mid_x.append(mx)
        mid_y.append(my)
        labelled = not dense or e.kind == "http" or e.status != "ok" or chosen
        mid_text.append(flag + e.label if labelled else "")
        mid_key.append(e.key)
        mid_colour.append(_edge_colour(e) if not chosen else OK)
        mid_size.append(14 if chosen else 9)
        network = (
            ""
            if math.isnan(e.network_ms)
            else f"<br>network (client − server) {e.network_ms:.2f} ms"
        )
        mid_hover.append(
            f"<b>{e.key}</b><br>{e.rate_rps:.3g} calls/s · {e.error_rate:.1%} errors"
            f"<br>p50 {e.p50_ms:.3g} ms · p95 {e.p95_ms:.3g} ms{network}"
            f"<br>{e.calls} sampled calls, {e.retries} retries, {e.unanswered} unanswered"
            + (f"<br><b>{e.status}</b>: {e.why}" if e.status != "ok" else "")
        )
    fig.add_trace(
        go.Scatter(
            x=mid_x,
            y=mid_y,
            mode="markers+text",
            text=mid_text,
            textposition="top center",
            textfont={"size": 10},
            marker={"size": mid_size, "color": mid_colour, "symbol": "circle"},
            customdata=mid_key,
            hovertext=mid_hover,
            hoverinfo="text",
            name="calls",
            showlegend=False,
        )
    )
    for kind in ("external", "service", "instance", "shard", "cache"):
        members = [n for n in smap.nodes if n.kind == kind]
        if not members:
            continue
        fig.add_trace(
            go.Scatter(
                x=[pos[n.id][0] for n in members],
                y=[pos[n.id][1] for n in members],
                mode="markers+text",
                text=[n.label for n in members],
                textposition="bottom center",
                marker={
                    "size": 22 if kind in ("service", "instance") else 16,
                    "symbol": _SYMBOL[kind],
                    "color": [colour.get(n.service, _MUTED) for n in members],
                    "line": {"width": 1, "color": "#444444"},
                },
                hovertext=[f"{n.id} ({kind})" for n in members],
                hoverinfo="text",
                name=kind,
                showlegend=False,
            )
        )
    columns = max((x for x, _ in pos.values()), default=0.0)
    rows = max((abs(y) for _, y in pos.values()), default=0.0)
    fig.update_layout(
        height=int(max(360, 90 * (2 * rows + 2))),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis={"visible": False, "range": [-0.6, columns + 0.6]},
        yaxis={"visible": False, "range": [-rows - 1.0, rows + 0.8]},
        dragmode="select",
        clickmode="event+select",
    )
    return fig


def _service_boxes(
    fig: go.Figure, nodes: list[Node], pos: dict[str, tuple[float, float]], colour: dict[str, str]
) -> None:
    """A shaded box around each service's replicas, labelled with the service name."""
    by_service: dict[str, list[Node]] = {}
    for n in nodes:
        if n.kind == "instance":
            by_service.setdefault(n.service, []).append(n)
    for service, members in by_service.items():
        xs = [pos[n.id][0] for n in members]
        ys = [pos[n.id][1] for n in members]
        fig.add_shape(
            type="rect",
            x0=min(xs) - 0.3,
            x1=max(xs) + 0.3,
            y0=min(ys) - 0.45,
            y1=max(ys) + 0.35,
            line={"color": colour.get(service, _MUTED), "width": 1},
            fillcolor=colour.get(service, _MUTED),
            opacity=0.12,
            layer="below",
        )
        fig.add_annotation(  # under the box: above it, an edge often passes
            x=(min(xs) + max(xs)) / 2,
            y=min(ys) - 0.45,
            text=f"<b>{service}</b>",
            showarrow=False,
            yanchor="top",
            font={"size": 11},
        )
