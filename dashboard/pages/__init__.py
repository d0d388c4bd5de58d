"""Thin Streamlit pages: read widgets, call cached loaders and analysis, render components."""
