"""Traces: recent traces, and one trace's spans as a waterfall (``?trace_id=`` opens it)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from dashboard.components.waterfall import MAX_SPANS, waterfall_figure
from dashboard.sources import SourceError
from dashboard.state import load_services, load_summaries, load_trace, show_source_error

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")

st.title("Traces")
trace_id = st.query_params.get("trace_id", "").strip().lower()

try:
    if trace_id:
        if not _TRACE_ID.match(trace_id):
            st.error(f"“{trace_id[:80]}” is not a trace id (expected 32 hexadecimal characters).")
        else:
            trace = load_trace(trace_id)
            if trace is None:
                st.warning(f"Trace {trace_id} was not found (it may not have arrived yet).")
            else:
                st.subheader(f"Trace {trace_id}")
                st.caption(f"{len(trace.spans)} spans · {trace.duration_ms:.1f} ms")
                if len(trace.spans) > MAX_SPANS:
                    st.info(f"Showing the first {MAX_SPANS} of {len(trace.spans)} spans.")
                st.plotly_chart(waterfall_figure(trace), key="waterfall")
                st.dataframe(
                    pd.DataFrame(
                        [
                            {
                                "service": s.service,
                                "operation": s.name,
                                "duration_ms": round(s.duration_ms, 3),
                                "status": s.status_code,
                                "span_id": s.span_id,
                                "parent": s.parent_span_id,
                            }
                            for s in trace.spans
                        ]
                    ),
                    hide_index=True,
                )
        st.link_button("← recent traces", "?")
    else:
        services = load_services()
        col1, col2 = st.columns(2)
        service = col1.selectbox("Service", ["(all)", *services])
        minutes = col2.selectbox(
            "Time range", [5, 15, 60, 360, 1440], index=2, format_func=lambda m: f"last {m} min"
        )
        end = datetime.now(UTC)
        summaries = load_summaries(
            None if service == "(all)" else service,
            end - timedelta(minutes=minutes),
            end + timedelta(minutes=1),
            50,
        )
        if not summaries:
            st.info("No traces in this time range yet.")
        else:
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
                        for s in summaries
                    ]
                ),
                hide_index=True,
                column_config={
                    "trace": st.column_config.LinkColumn(
                        "trace", display_text=r"trace_id=([0-9a-f]{12})"
                    )
                },
            )
except SourceError as exc:
    show_source_error(exc)
