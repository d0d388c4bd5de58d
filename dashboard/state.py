"""Cached access to the configured source: one client per session, results cached with a TTL."""

from __future__ import annotations

from datetime import datetime

import streamlit as st

from dashboard.settings import DashboardSettings
from dashboard.sources import SourceError, TelemetrySource, Trace, TraceSummary, make_source

__all__ = [
    "load_services",
    "load_summaries",
    "load_trace",
    "settings",
    "show_source_error",
    "source",
]


def settings() -> DashboardSettings:
    return DashboardSettings.from_env()


@st.cache_resource
def _source(kind: str, url: str, token: str | None) -> TelemetrySource:
    return make_source(kind, url, token)


def source() -> TelemetrySource:
    s = settings()
    return _source(s.source, s.query_url, s.token)


@st.cache_data(ttl=5, show_spinner=False)
def load_services() -> list[str]:
    return source().services()


@st.cache_data(ttl=5, show_spinner=False)
def load_summaries(
    service: str | None, start: datetime, end: datetime, limit: int
) -> list[TraceSummary]:
    return source().trace_summaries(service, start, end, limit)


@st.cache_data(ttl=60, show_spinner=False)
def load_trace(trace_id: str) -> Trace | None:
    return source().get_trace(trace_id)


def show_source_error(exc: SourceError) -> None:
    """The banner every page shows instead of a traceback when the backend fails."""
    st.error(f"Telemetry backend unreachable at {exc.url} — {exc.reason}", icon="🚫")
