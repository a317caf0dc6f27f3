"""The study picker both researcher pages share: one selectbox over every launched version."""

from __future__ import annotations

from typing import Any

import streamlit as st

from study.db import Database, connect
from study.versions import list_studies
from ui.research.demo_banner import demo_banner

KEY = "research_pick"   # the chosen 'slug@version', kept when moving between researcher pages


def database() -> Database:
    """The study database (`$DATABASE_URL`, else the SQLite file under the data folder)."""
    return connect()


def _key(row: dict[str, Any]) -> str:
    return f"{row['slug']}@{row['version']}"


def _label(row: dict[str, Any]) -> str:
    state = "active" if row["status"] == "active" else row["status"]
    live = "" if row.get("study_status", "live") == "live" else f", study {row['study_status']}"
    return f"{row['title']} — {row['slug']} v{row['version']} · {row['config_sha256'][:8]} ({state}{live})"


def pick_study(db: Database, page: str) -> dict[str, Any] | None:
    """A selectbox of every study version (the last choice, else the newest active version);
    returns its `list_studies` row, or None with a note when no study is launched yet."""
    rows = list_studies(db)
    if not rows:
        st.info("No study has been launched yet. Create and launch one on the Studies page (or "
                "`python -m study launch examples/studies/forward_simulation.yaml`).")
        return None
    by_key = {_key(r): r for r in rows}
    active = sorted((r for r in rows if r["status"] == "active"), key=lambda r: r["created_at"])
    default = st.session_state.get(KEY)
    if default not in by_key:
        default = _key(active[-1] if active else rows[-1])
    keys = list(by_key)
    choice = st.selectbox("Study version", keys, index=keys.index(default), key=f"{page}_study",
                          format_func=lambda k: _label(by_key[k]))
    st.session_state[KEY] = choice
    demo_banner(db, by_key[choice]["slug"], page)
    return by_key[choice]
