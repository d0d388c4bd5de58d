"""Streamlit entry point: page config and navigation only."""

from pathlib import Path

import streamlit as st

_PAGES = Path(__file__).parent / "pages"

st.set_page_config(page_title="Narrows", page_icon="🔭", layout="wide")
st.navigation(
    [
        st.Page(_PAGES / "traces.py", title="Traces", icon="🧵", default=True),
    ]
).run()
