"""The label on demo data, with the button that removes it."""

from __future__ import annotations

import streamlit as st

from study import demo
from study.db import Database


def demo_banner(db: Database, slug: str | None, key: str) -> None:
    """Say that `slug` is the first-start demo (simulated participants) and offer to remove it."""
    if slug is None or not demo.is_demo(slug):
        return
    left, right = st.columns([5, 1])
    left.info("**Demo data.** This study was built on first start: Shapes-world scenes explained by the "
              "bundled toy model, answered by simulated participants (bots), not people.", icon=":material/smart_toy:")
    if right.button("Remove the demo", key=f"{key}_remove_demo"):
        demo.remove_demo(db)
        st.rerun()
