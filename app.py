"""ConVis Studio: the Streamlit entry point. The pages are declared here, per visitor.

A participant (a study link `?study=SLUG`, or a resume link `?r=TOKEN`) gets the participant page
and nothing else: no menu, and no path or query can open another page in that browser session.
Everyone else gets the researcher pages, behind the researcher password.
"""

import streamlit as st

from study import access
from ui.login import logged_in, login_page, remember_login

PARTICIPANT = "_visitor_is_participant"
RESEARCHER_PAGES = [("explore", "Explore explanations", ":material/image_search:"),
                    ("studies", "Studies", ":material/science:"), ("monitor", "Monitor", ":material/monitoring:"),
                    ("analysis", "Analysis", ":material/analytics:"),
                    ("evaluation", "Evaluation", ":material/fact_check:")]
participant_link = "study" in st.query_params or "r" in st.query_params


@st.cache_resource
def _announce_password() -> None:
    """First start with no password configured: generate one, print it once to the terminal."""
    password = access.ensure_password()
    if password:
        print(access.announcement(password), flush=True)


@st.cache_resource
def _first_start() -> None:
    """A fresh installation builds its demo study in the background (study.demo)."""
    from study import demo
    from study.db import connect

    try:
        demo.ensure_demo(connect())
    except Exception as exc:  # a dead database or a read-only folder must not stop the app
        print(f"demo study not started: {exc}", flush=True)


st.set_page_config(page_title="ConVis Studio", page_icon="🔎", layout="wide",
                   initial_sidebar_state="collapsed" if participant_link else "auto")
if participant_link:
    st.session_state[PARTICIPANT] = True
if st.session_state.get(PARTICIPANT):
    nav = st.navigation([st.Page("app_pages/take_part.py", title="Study", default=True)], position="hidden")
else:
    _announce_password()
    _first_start()
    if logged_in():
        remember_login()
        nav = st.navigation([st.Page(f"app_pages/{path}.py", title=title, icon=icon, url_path=path, default=i == 0)
                             for i, (path, title, icon) in enumerate(RESEARCHER_PAGES)])
    else:   # every researcher path shows the login, then that page
        nav = st.navigation([st.Page(login_page, title="Log in", url_path=path, default=i == 0)
                             for i, (path, _, _) in enumerate(RESEARCHER_PAGES)], position="hidden")
nav.run()
