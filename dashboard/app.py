"""Streamlit entry point: page config, the shared sidebar, and navigation."""

from pathlib import Path

import streamlit as st

from dashboard.components.sidebar import render_sidebar
from dashboard.state import settings

_PAGES = Path(__file__).parent / "pages"

st.set_page_config(page_title="Narrows", page_icon=":material/insights:", layout="wide")
page = st.navigation(
    [
        st.Page(_PAGES / "overview.py", title="Overview", icon=":material/home:", default=True),
        st.Page(
            _PAGES / "latency.py", title="Latency", icon=":material/timer:", url_path="latency"
        ),
        st.Page(
            _PAGES / "traces.py", title="Traces", icon=":material/account_tree:", url_path="traces"
        ),
        st.Page(_PAGES / "logs.py", title="Logs", icon=":material/receipt_long:", url_path="logs"),
        st.Page(
            _PAGES / "shards.py",
            title="Shards & cache",
            icon=":material/grid_view:",
            url_path="shards",
        ),
        st.Page(
            _PAGES / "bottlenecks.py",
            title="Bottlenecks",
            icon=":material/troubleshoot:",
            url_path="bottlenecks",
        ),
        st.Page(
            _PAGES / "capacity.py",
            title="Capacity",
            icon=":material/trending_up:",
            url_path="capacity",
        ),
    ]
)
render_sidebar(settings())
page.run()
