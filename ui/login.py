"""The researcher pages' password gate (drawn before the navigation offers them)."""

from __future__ import annotations

import streamlit as st

from study import access

KEY = "research_logged_in"


@st.cache_resource
def _throttle() -> access.Throttle:
    return access.Throttle()


def _secret() -> str | None:
    try:
        return st.secrets.get(access.ENV)
    except Exception:  # no secrets file: configuration comes from the environment or the stored hash
        return None


def logged_in() -> bool:
    """True once this browser session gave the researcher password."""
    return bool(st.session_state.get(KEY))


def login_page() -> None:
    """The password form; a right password reruns into the researcher pages."""
    secret = _secret()
    st.title("ConVis Studio")
    st.caption("Researcher pages. Participants open their study link instead.")
    ip = st.context.ip_address
    client = ip if isinstance(ip, str) and ip else "local"
    wait = _throttle().wait_left(client)
    with st.form("research_login"):
        password = st.text_input("Password", type="password", key="research_password")
        sent = st.form_submit_button("Log in", type="primary")
    if not sent:
        if not access.configured(secret) and not access.hash_file().is_file():
            st.info("No password is set yet: start the app with `./run`, which prints one, or set "
                    f"`{access.ENV}`.")
        return
    if wait > 0:
        st.error(f"Too many wrong passwords. Try again in {wait:.0f} s.")
        return
    if access.verify(password, secret):
        _throttle().succeeded(client)
        st.session_state[KEY] = True
        st.rerun()
    _throttle().failed(client)
    st.error("Wrong password.")
