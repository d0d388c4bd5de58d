"""The Narrows dashboard: sources (HTTP clients) → analysis (pure) → Streamlit pages."""

__all__: list[str] = []
