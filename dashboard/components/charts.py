"""Plotly figures the pages share, readable in light and dark themes.

Figures keep Plotly's transparent background and let Streamlit's theme colour text and
grid lines; series colours are mid-tone (visible on white and on near-black), and the
SLO lines are dashed so they stay distinct without relying on colour alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

from dashboard.sources.model import Histogram
from dashboard.sources.query import TimeWindow

__all__ = [
    "ERROR",
    "OK",
    "PALETTE",
    "heatmap_figure",
    "line_figure",
    "scatter_figure",
]

#: Colour-blind-safe mid tones (Okabe–Ito), legible on light and dark backgrounds.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
OK, ERROR, HIGHLIGHT, SLO = "#0072B2", "#D55E00", "#E69F00", "#CC79A7"


def _layout(fig: go.Figure, title: str, y_title: str, height: int = 280) -> go.Figure:
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        height=height,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        yaxis_title=y_title,
        legend={"orientation": "h", "y": -0.2},
        hovermode="x unified",
        colorway=list(PALETTE),
    )
    return fig


def line_figure(
    frame: pd.DataFrame,
    y: str,
    title: str,
    y_title: str,
    *,
    slo: float | None = None,
    slo_label: str = "SLO",
    scale: float = 1.0,
) -> go.Figure:
    """One line per ``group`` over ``ts``; an optional dashed SLO line."""
    fig = go.Figure()
    for i, (group, g) in enumerate(frame.sort_values("ts").groupby("group", sort=False)):
        fig.add_trace(
            go.Scatter(
                x=g["ts"],
                y=g[y] * scale,
                mode="lines+markers",
                name=str(group),
                line={"color": PALETTE[i % len(PALETTE)], "width": 2},
                marker={"size": 4},
            )
        )
    if slo is not None and math.isfinite(slo):
        fig.add_hline(
            y=slo,
            line={"color": SLO, "dash": "dash", "width": 2},
            annotation_text=slo_label,
            annotation_position="top left",
        )
    fig.update_xaxes(tickformat="%H:%M:%S")  # the date line would collide with the legend
    return _layout(fig, title, y_title)


def _bucket_label(low: float, high: float) -> str:
    if math.isinf(high):
        return f">{low:g} ms"
    return f"≤{high:g} ms"


def _time_grid(times: list[pd.Timestamp], window: TimeWindow | None) -> list[pd.Timestamp]:
    """Every step of the window, anchored on the data's own step starts, so a window with
    one busy step still shows as a timeline and not as one wide cell."""
    if window is None or not times:
        return times
    step = pd.Timedelta(seconds=window.step_s)
    anchor = times[0]
    start = anchor - step * int((anchor - pd.Timestamp(window.start)) / step)
    grid = list(pd.date_range(start, pd.Timestamp(window.end), freq=step))
    return sorted(set(grid) | set(times))


def heatmap_figure(hist: Histogram, title: str, window: TimeWindow | None = None) -> go.Figure:
    """Time × latency bucket counts, with invisible markers on non-empty cells so a box or
    click selection returns the cells (Plotly heatmaps cannot be selected themselves)."""
    data = hist.data
    edges = (0.0, *hist.bounds_ms, math.inf)
    used = sorted(set(data["bucket"])) if not data.empty else []
    lo, hi = (min(used), max(used)) if used else (0, 0)
    labels = [_bucket_label(edges[i], edges[i + 1]) for i in range(lo, hi + 1)]
    times = _time_grid(sorted(set(data["ts"])) if not data.empty else [], window)
    z = [[0] * len(times) for _ in labels]
    col = {t: j for j, t in enumerate(times)}
    for ts, bucket, count in zip(data["ts"], data["bucket"], data["count"], strict=True):
        z[int(bucket) - lo][col[ts]] = int(count)
    fig = go.Figure(
        go.Heatmap(
            x=times,
            y=labels,
            z=[[v or None for v in r] for r in z],
            colorscale="Viridis",
            colorbar={"title": "spans"},
            hovertemplate="%{x}<br>%{y}<br>%{z} spans<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=list(data["ts"]),
            y=[labels[int(b) - lo] for b in data["bucket"]],
            customdata=list(zip(data["low_ms"], data["high_ms"], strict=True)),
            mode="markers",
            marker={"size": 14, "opacity": 0.01},
            hoverinfo="skip",
            showlegend=False,
            name="cells",
        )
    )
    fig.update_layout(dragmode="select", hovermode="closest")
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=labels)
    return _layout(fig, title, "latency bucket", height=360)


def scatter_figure(
    x: Sequence[object],
    y: Sequence[float],
    errors: Sequence[bool],
    ids: Sequence[str],
    hover: Sequence[str],
    title: str,
) -> go.Figure:
    """Duration over time, one marker per trace (errors in a second colour), selectable."""
    fig = go.Figure()
    for failed, name, colour in ((False, "ok", OK), (True, "error", ERROR)):
        idx = [i for i, e in enumerate(errors) if e == failed]
        if not idx:
            continue
        fig.add_trace(
            go.Scatter(
                x=[x[i] for i in idx],
                y=[y[i] for i in idx],
                customdata=[ids[i] for i in idx],
                hovertext=[hover[i] for i in idx],
                hoverinfo="text",
                mode="markers",
                name=name,
                marker={"color": colour, "size": 8, "symbol": "x" if failed else "circle"},
            )
        )
    fig.update_layout(hovermode="closest")
    fig.update_yaxes(type="log")
    return _layout(fig, title, "duration (ms)", height=300)
