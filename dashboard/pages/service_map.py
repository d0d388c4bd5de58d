"""Service map: who calls whom across services, replicas, shards and the cache, with rate,
errors, p95 and network time per edge; a slow or failing edge stands out; pick an edge (a
click on its label, the list, or ``?from=…&to=…``) → the calls behind it and their traces."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from dashboard import params
from dashboard.analysis.servicemap import Edge, ServiceMap
from dashboard.components.service_graph import service_map_figure
from dashboard.state import current_window, guard, service_map

st.title("Service map")
CHART = "service_map_chart"
PICK = "service_map_edge"


def _chart_pick(keys: list[str]) -> str | None:
    """An edge newly clicked (or box-selected) in the chart since the last rerun."""
    points = (st.session_state.get(CHART) or {}).get("selection", {}).get("points", [])
    picked = [p.get("customdata") for p in points if p.get("customdata") in keys]
    if not picked or picked[0] == st.session_state.get("service_map_applied"):
        return None
    st.session_state["service_map_applied"] = picked[0]
    return str(picked[0])


def _initial(smap: ServiceMap) -> str:
    """The deep-linked edge, else the one that stands out most, else the busiest."""
    nodes = [n.id for n in smap.nodes]
    source, problem = params.choice(st.query_params, "from", nodes)
    target, problem_to = params.choice(st.query_params, "to", nodes)
    for p in (problem, problem_to):
        if p:
            st.warning(p)
    if source and target:
        edge = smap.edge(source, target)
        if edge is not None:
            return edge.key
        st.warning(f"No calls from {source} to {target} in this window.")
    flagged = smap.standing_out()
    if flagged:
        return flagged[0].key
    return max(smap.edges, key=lambda e: e.rate_rps).key


def _calls_table(smap: ServiceMap, edge: Edge) -> pd.DataFrame:
    calls = smap.edge_calls(edge).sort_values(["error", "duration_ms"], ascending=False)
    return pd.DataFrame(
        {
            "trace": [f"traces?trace_id={t}" for t in calls["trace_id"]],
            "route": calls["route"],
            "operation": calls["operation"],
            "duration_ms": calls["duration_ms"].round(3),
            "server_ms": calls["server_ms"].round(3),
            "network_ms": calls["network_ms"].round(3),
            "error": calls["error"],
            "answered": calls["answered"],
            "attempt": calls["resend"] + 1,
        }
    ).head(200)


def _detail(smap: ServiceMap, edge: Edge) -> None:
    st.subheader(edge.key)
    if edge.status != "ok":
        st.warning(f"This edge stands out: {edge.status} — {edge.why}.", icon=":material/warning:")
    cols = st.columns(5)
    cols[0].metric("Rate", f"{edge.rate_rps:.3g}/s")
    cols[1].metric("Errors", f"{edge.error_rate:.1%}")
    cols[2].metric("p95", f"{edge.p95_ms:.3g} ms")
    cols[3].metric(
        "Network (median)",
        "—" if math.isnan(edge.network_ms) else f"{edge.network_ms:.2f} ms",
        help="client span duration − server span duration: wire, connect, queueing",
    )
    cols[4].metric("Retries", f"{edge.retries}")
    st.caption(
        f"{edge.calls} sampled calls ({edge.unanswered} unanswered); slowest and failed first."
    )
    st.dataframe(
        _calls_table(smap, edge),
        hide_index=True,
        key="service_map_calls",
        column_config={
            "trace": st.column_config.LinkColumn("trace", display_text=r"trace_id=(\w{12})")
        },
    )


window = current_window()
with guard():
    by_instance = st.toggle("Replicas as separate nodes", value=True, key="service_map_replicas")
    smap, note = service_map(window, by_instance)
    st.caption(f"Window {window.label()} · {note}")
    if not smap.edges:
        st.info("No calls between services in this window.")
        st.stop()
    keys = [e.key for e in smap.edges]
    clicked = _chart_pick(keys)
    if clicked is not None:
        st.session_state[PICK] = clicked
    elif st.session_state.get(PICK) not in keys:
        st.session_state[PICK] = _initial(smap)
    for e in smap.standing_out():
        icon = ":material/error:" if e.status == "failing" else ":material/speed:"
        st.warning(f"**{e.key}** is {e.status}: {e.why}.", icon=icon)
    st.plotly_chart(
        service_map_figure(smap, st.session_state[PICK]),
        key=CHART,
        on_select="rerun",
        selection_mode=("points", "box"),
    )
    st.caption(
        "Arrows go from caller to callee, labelled rate · error rate · p95; ■ shard, ◆ cache. "
        "Click an edge's label to see its calls."
    )
    chosen = st.selectbox("Edge", keys, key=PICK)
    edge = next(e for e in smap.edges if e.key == chosen)
    st.query_params["from"], st.query_params["to"] = edge.source, edge.target
    _detail(smap, edge)
    with st.expander("All edges"):
        st.dataframe(smap.frame(), hide_index=True, key="service_map_edges")
