"""Traces: search with a duration-over-time scatter; one trace in depth (``?trace_id=``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from dashboard import params
from dashboard.components.charts import scatter_figure
from dashboard.components.trace_view import render_trace
from dashboard.sources.query import TraceQuery
from dashboard.state import current_window, guard, load

_ATTR = re.compile(r"^([A-Za-z0-9_.\-]{1,100})=([^\x00-\x1f\x7f]{1,200})$")

st.title("Traces")


def _search() -> None:
    window = current_window()
    services = load.services()
    c1, c2, c3 = st.columns(3)
    wanted, problem = params.choice(st.query_params, "service", services)
    if problem:
        st.warning(problem)
    options = ["(all)", *services]
    picked = c1.selectbox(
        "Service", options, index=options.index(wanted) if wanted else 0, key="traces_service"
    )
    service = None if picked == "(all)" else picked
    ops = ["(all)", *sorted(o.name for o in load.operations(service))] if service else ["(all)"]
    operation = c2.selectbox("Operation", ops, key="traces_operation")
    status = c3.selectbox("Status", ["any", "errors only", "no errors"], key="traces_status")
    c4, c5, c6 = st.columns(3)
    dmin = c4.number_input("Min duration (ms)", min_value=0.0, value=0.0, step=10.0, key="dmin")
    dmax = c5.number_input("Max duration (ms, 0 = none)", min_value=0.0, value=0.0, key="dmax")
    attr = c6.text_input("Attribute (key=value)", key="traces_attr", max_chars=300)
    attributes: tuple[tuple[str, str], ...] = ()
    if attr.strip():
        m = _ATTR.match(attr.strip())
        if not m:
            st.warning("Attribute filter must look like key=value (e.g. app.shard.id=2).")
            return
        attributes = ((m.group(1), m.group(2)),)
    query = TraceQuery(
        window,
        service=service,
        operation=None if operation == "(all)" else operation,
        duration_min_ms=dmin or None,
        duration_max_ms=dmax or None,
        attributes=attributes,
        limit=200 if status != "any" else 100,
    )
    summaries = load.find_traces(query)
    if status == "errors only":
        summaries = [s for s in summaries if s.error_count]
    elif status == "no errors":
        summaries = [s for s in summaries if not s.error_count]
    if not summaries:
        st.info("No traces match in this time range.")
        return
    starts = [datetime.fromtimestamp(s.start_ns / 1e9, UTC) for s in summaries]
    st.plotly_chart(
        scatter_figure(
            starts,
            [max(s.duration_ms, 0.001) for s in summaries],
            [s.error_count > 0 for s in summaries],
            [s.trace_id for s in summaries],
            [f"{s.root_operation}<br>{s.duration_ms:.1f} ms" for s in summaries],
            f"{len(summaries)} traces, duration over time",
        ),
        key="scatter",
        on_select="rerun",
        selection_mode=("points", "box"),
    )
    chosen = {
        p.get("customdata")
        for p in (st.session_state.get("scatter") or {}).get("selection", {}).get("points", [])
    }
    shown = [s for s in summaries if s.trace_id in chosen] or summaries
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "trace": f"?trace_id={s.trace_id}",
                    "root": f"{s.root_service}: {s.root_operation}",
                    "start": datetime.fromtimestamp(s.start_ns / 1e9, UTC),
                    "duration_ms": round(s.duration_ms, 2),
                    "spans": s.span_count,
                    "errors": s.error_count,
                }
                for s in shown
            ]
        ),
        hide_index=True,
        key="trace_list",
        column_config={
            "trace": st.column_config.LinkColumn("trace", display_text=r"trace_id=([0-9a-f]{12})")
        },
    )


trace_id, problem = params.trace_id(st.query_params)
span_id, span_problem = params.span_id(st.query_params)
with guard():
    if problem:
        st.error(problem)
        st.page_link("pages/traces.py", label="← search traces")
    elif trace_id:
        trace = load.trace(trace_id)
        if trace is None:
            st.warning(f"Trace {trace_id} was not found (it may not have arrived yet).")
        else:
            if span_problem:
                st.warning(span_problem)
            render_trace(trace, current_window(), span_id)
        st.page_link("pages/traces.py", label="← search traces")
    else:
        _search()
