"""The sidebar every page shares: time range, auto-refresh pause, which backend is read."""

from __future__ import annotations

import streamlit as st

from dashboard import params
from dashboard.settings import DashboardSettings
from dashboard.state import DEFAULT_RANGE_MIN

__all__ = ["refresh_every", "render_sidebar"]

_LABELS = {5: "last 5 min", 15: "last 15 min", 60: "last hour", 360: "last 6 h", 1440: "last 24 h"}


def render_sidebar(config: DashboardSettings) -> None:
    """Draw the shared controls; their values live in ``st.session_state``."""
    if "range_minutes" not in st.session_state:
        minutes, problem = params.range_minutes(st.query_params)
        st.session_state["range_minutes"] = minutes or DEFAULT_RANGE_MIN
        if problem:
            st.sidebar.warning(problem)
    with st.sidebar:
        minutes = st.selectbox(
            "Time range",
            list(_LABELS),
            format_func=lambda m: _LABELS[m],
            key="range_minutes",
        )
        # Keep the choice in the URL, so a copied link opens the same window.
        st.query_params["range"] = next(k for k, v in params.RANGES.items() if v == minutes)
        st.toggle(
            "Pause auto-refresh",
            key="paused",
            help=f"Live charts refresh every {config.refresh_s:g} s unless paused.",
        )
        st.caption(f"Source: **{config.source}**")


def refresh_every(config: DashboardSettings) -> float | None:
    """The ``run_every`` for live fragments: None while paused."""
    return None if st.session_state.get("paused", False) else config.refresh_s
