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
    """True once this browser gave the researcher password (this session, or a signed cookie from
    an earlier one, so a reload or a new tab stays logged in for `access.SESSION_HOURS`)."""
    if st.session_state.get(KEY):
        return True
    try:
        cookie = st.context.cookies.get(access.SESSION_COOKIE)
    except Exception:  # no browser context (bare script runs)
        cookie = None
    if isinstance(cookie, str) and access.session_valid(cookie):
        st.session_state[KEY] = True
        return True
    return False


def remember_login() -> None:
    """Once after a login: put the signed session in a cookie (SameSite=Strict, path /)."""
    token = st.session_state.pop(KEY + "_cookie", None)
    if token:
        st.html(f"<script>document.cookie = '{access.SESSION_COOKIE}={token}; path=/; "
                f"max-age={access.SESSION_HOURS * 3600}; SameSite=Strict';</script>", unsafe_allow_javascript=True)


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
        st.session_state[KEY + "_cookie"] = access.session_token()
        st.rerun()
    _throttle().failed(client)
    st.error("Wrong password.")
