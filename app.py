"""ConVis Studio: the Streamlit entry point. The pages are declared here, per visitor.

A participant (a study link `?study=SLUG`, or a resume link `?r=TOKEN`) gets the participant page
and nothing else: no menu, and no path or query can open another page in that browser session.
Everyone else gets the researcher pages.
"""

import streamlit as st

PARTICIPANT = "_visitor_is_participant"

st.set_page_config(page_title="ConVis Studio", page_icon="🔎", layout="wide",
                   initial_sidebar_state="collapsed" if "study" in st.query_params or "r" in st.query_params
                   else "auto")
if "study" in st.query_params or "r" in st.query_params:
    st.session_state[PARTICIPANT] = True
if st.session_state.get(PARTICIPANT):
    nav = st.navigation([st.Page("pages/take_part.py", title="Study", default=True)], position="hidden")
else:
    nav = st.navigation([st.Page("pages/explore.py", title="Explore explanations", icon="🔎", default=True)])
nav.run()
