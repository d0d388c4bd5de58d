"""Pure analysis over traces and data frames: no I/O, no Streamlit."""
