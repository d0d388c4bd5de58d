"""Streamlit entry point: page config, the shared sidebar, and navigation."""

from pathlib import Path

import streamlit as st

from dashboard.components.sidebar import render_sidebar
from dashboard.state import settings

_PAGES = Path(__file__).parent / "pages"


def _page(name: str, title: str, icon: str, *, default: bool = False) -> st.Page:
    return st.Page(
        _PAGES / f"{name}.py",
        title=title,
        icon=f":material/{icon}:",
        url_path=None if default else name,
        default=default,
    )


st.set_page_config(page_title="Narrows", page_icon=":material/insights:", layout="wide")
traces = _page("traces", "Traces", "account_tree")
page = st.navigation(
    [
        _page("overview", "Overview", "home", default=True),
        _page("latency", "Latency", "timer"),
        traces,
        _page("logs", "Logs", "receipt_long"),
        _page("service_map", "Service map", "hub"),
        _page("shards", "Shards & cache", "grid_view"),
        _page("bottlenecks", "Bottlenecks", "troubleshoot"),
        _page("capacity", "Capacity", "trending_up"),
    ]
)
if page.url_path == "" and "trace_id" in st.query_params:
    # `/?trace_id=…` (the first releases' link) still opens the trace.
    st.switch_page(traces, query_params={"trace_id": st.query_params["trace_id"]})
render_sidebar(settings())
page.run()
