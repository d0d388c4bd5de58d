"""Shards & cache: load share, latency and errors per shard side by side; pool wait vs
query time; cache hit ratio over time and request latency on hits vs misses."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard.components.breakdown import by_cache_result
from dashboard.components.charts import ERROR, OK, PALETTE, line_figure
from dashboard.components.sidebar import refresh_every
from dashboard.sources.query import TraceQuery
from dashboard.state import current_window, guard, load, note, settings

config = settings()
st.title("Shards & cache")


def shard_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per shard over the window: share of queries, latency, errors, pool wait."""
    g = frame.groupby("shard_id")
    queries = g["queries"].sum()
    weight = frame["queries"].where(frame["queries"] > 0)
    out = pd.DataFrame(
        {
            "queries": queries,
            "load_share_pct": (100 * queries / max(int(queries.sum()), 1)).round(1),
            "mean_ms": (frame["mean_ms"] * weight).groupby(frame["shard_id"]).sum() / queries,
            "p95_ms": g["p95_ms"].max(),
            "errors": g["errors"].sum(),
            "pool_wait_mean_ms": g["pool_wait_mean_ms"].mean(),
        }
    )
    out["query_ms"] = (out["mean_ms"] - out["pool_wait_mean_ms"].fillna(0)).clip(lower=0)
    return out.round(2).reset_index().sort_values("shard_id")


def _bars(table: pd.DataFrame, column: str, title: str, unit: str) -> go.Figure:
    fig = go.Figure(
        go.Bar(x=table["shard_id"].astype(str), y=table[column], marker_color=PALETTE[0])
    )
    fig.update_layout(title=title, height=240, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    fig.update_xaxes(title="shard", type="category")
    fig.update_yaxes(title=unit)
    return fig


def _wait_vs_query(table: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    x = table["shard_id"].astype(str)
    fig.add_trace(go.Bar(x=x, y=table["pool_wait_mean_ms"], name="pool wait", marker_color=ERROR))
    fig.add_trace(go.Bar(x=x, y=table["query_ms"], name="query", marker_color=OK))
    fig.update_layout(
        barmode="stack",
        title="Mean time per query: waiting for a connection vs working",
        height=260,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "y": -0.25},
    )
    fig.update_xaxes(title="shard", type="category")
    fig.update_yaxes(title="ms")
    return fig


@st.fragment(run_every=refresh_every(config))
def live() -> None:
    window = current_window()
    st.subheader("Shards")
    with guard():
        frame = load.shard_stats(window)
        note(frame)
        if frame.data.empty:
            st.info("No shard queries (spans with app.shard.id) in this window.")
        else:
            table = shard_table(frame.data)
            st.dataframe(table, hide_index=True, key="shard_table")
            cols = st.columns(3)
            cols[0].plotly_chart(_bars(table, "load_share_pct", "Load share", "%"), key="share")
            cols[1].plotly_chart(_bars(table, "p95_ms", "p95 query latency", "ms"), key="p95")
            cols[2].plotly_chart(_bars(table, "errors", "Errors", "queries"), key="errs")
            st.plotly_chart(_wait_vs_query(table), key="wait")
    st.subheader("Cache")
    with guard():
        cache = load.cache_stats(window).data
        if cache.empty:
            st.info("No cache lookups in this window.")
        else:
            c = cache.copy()
            lookups = c["hits"] + c["misses"] + c["errors"]
            c["hit_ratio"] = c["hits"] / lookups.where(lookups > 0)
            c = c.rename(columns={"cache": "group"})
            total = cache[["hits", "misses", "errors"]].sum()
            ratio = total["hits"] / max(int(total.sum()), 1)
            st.metric("Hit ratio over the window", f"{ratio:.1%}")
            st.plotly_chart(
                line_figure(c, "hit_ratio", "Cache hit ratio", "% of lookups", scale=100.0),
                key="hit_ratio",
            )
    with guard():
        traces = load.fetch_traces(TraceQuery(window, limit=200))
        st.caption(f"Request latency by cache outcome ({len(traces)} most recent traces)")
        st.dataframe(by_cache_result(traces), hide_index=True, key="hit_vs_miss")


live()
