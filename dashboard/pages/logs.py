"""Logs: search by service, minimum level and text; each line links to its trace."""

from __future__ import annotations

import streamlit as st

from dashboard import params
from dashboard.components.logs_table import logs_table
from dashboard.components.sidebar import refresh_every
from dashboard.sources.query import LEVELS, LogQuery
from dashboard.state import current_window, guard, load, settings

config = settings()
st.title("Logs")

with guard():
    services = load.services()
    wanted_service, p1 = params.choice(st.query_params, "service", services)
    wanted_level, p2 = params.level(st.query_params)
    wanted_text, p3 = params.text(st.query_params, "q", 256)
    trace_id, p4 = params.trace_id(st.query_params)
    for problem in (p1, p2, p3, p4):
        if problem:
            st.warning(problem)
    c1, c2, c3 = st.columns([1, 1, 2])
    options = ["(all)", *services]
    service = c1.selectbox(
        "Service",
        options,
        index=options.index(wanted_service) if wanted_service else 0,
        key="logs_service",
    )
    level = c2.selectbox(
        "Minimum level",
        LEVELS,
        index=LEVELS.index(wanted_level) if wanted_level else LEVELS.index("info"),
        key="logs_level",
    )
    text = c3.text_input("Contains", value=wanted_text or "", max_chars=256, key="logs_text")
    if trace_id:
        st.caption(f"Only logs of trace {trace_id}.")

    @st.fragment(run_every=refresh_every(config))
    def results() -> None:
        with guard():
            query = LogQuery(
                window=current_window(),
                trace_id=trace_id,
                service=None if service == "(all)" else service,
                level=level,
                text=text.strip() or None,
                limit=500,
            )
            logs = load.logs(query)
            st.caption(f"{len(logs)} newest lines (at most 500)")
            if logs:
                logs_table(logs)
            else:
                st.info("No log lines match in this time range.")

    results()
