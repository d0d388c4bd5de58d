"""A table of log records; a record with a trace id links to that trace's page."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from dashboard.sources.model import LogRecord

__all__ = ["logs_frame", "logs_table"]


def logs_frame(logs: Sequence[LogRecord]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "time": datetime.fromtimestamp(r.time_ns / 1e9, UTC),
                "level": r.severity,
                "service": r.service,
                "message": r.body,
                "trace": f"traces?trace_id={r.trace_id}" if r.trace_id else None,
                "span_id": r.span_id,
                "attributes": ", ".join(f"{k}={v}" for k, v in sorted(r.attributes.items())),
            }
            for r in logs
        ],
        columns=["time", "level", "service", "message", "trace", "span_id", "attributes"],
    )


def logs_table(logs: Sequence[LogRecord], *, link_traces: bool = True, key: str = "logs") -> None:
    frame = logs_frame(logs)
    if not link_traces:
        frame = frame.drop(columns=["trace"])
    st.dataframe(
        frame,
        hide_index=True,
        key=key,
        column_config={
            "time": st.column_config.DatetimeColumn("time", format="HH:mm:ss.SSS"),
            "trace": st.column_config.LinkColumn(
                "trace", display_text=r"trace_id=([0-9a-f]{12})", help="open the trace"
            ),
        },
    )
