"""ConVis Studio: the Streamlit entry point. Every page is declared here, in order."""

import streamlit as st

st.set_page_config(page_title="ConVis Studio", page_icon="🔎", layout="wide")
nav = st.navigation([st.Page("pages/explore.py", title="Explore explanations", icon="🔎", default=True)])
nav.run()
