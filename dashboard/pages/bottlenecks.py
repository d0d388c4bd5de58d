"""Bottlenecks: every finding of the analysis for the window, root causes first, with
evidence (example traces, the numbers), and where the time goes per operation."""

from __future__ import annotations

import streamlit as st

from dashboard.components.findings import findings_list
from dashboard.sources.query import SpanFilter
from dashboard.state import current_window, diagnosis, guard, load, note

st.title("Bottlenecks")
window = current_window()
st.caption(
    f"Window {window.label()} · findings are recomputed at most every 30 s "
    "(root causes first; symptoms they explain follow)."
)

with guard():
    report = diagnosis(window)
    alarms = [f for f in report.findings if f.is_alarm]
    info = [f for f in report.findings if not f.is_alarm]
    if not report.findings:
        st.success("No bottleneck found in this window.")
    if alarms:
        st.subheader(f"{len(alarms)} finding{'s' if len(alarms) != 1 else ''} to act on")
        findings_list(alarms)
    if info:
        with st.expander(f"{len(info)} informational finding(s)", expanded=not alarms):
            findings_list(info)
    if report.skipped:
        with st.expander("Detectors that did not run"):
            for line in report.skipped:
                st.caption(line)

st.subheader("Where the time goes")
with guard():
    ops = load.operation_times(window, SpanFilter(kind="server"))
    note(ops)
    st.dataframe(
        ops.data.round(3),
        hide_index=True,
        key="self_time",
        column_config={
            "self_share": st.column_config.ProgressColumn(
                "self share", min_value=0.0, max_value=1.0, format="percent"
            )
        },
    )
