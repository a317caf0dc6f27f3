"""Streamlit building blocks of the pages: drawing only (no SQL, no science)."""
