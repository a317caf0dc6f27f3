"""Monitor: a study version's recruitment, flow, quality, times and activity, live."""

import streamlit as st

from study.monitor import snapshot
from ui.research import monitor_view
from ui.research.picker import database, pick_study

REFRESH_S = 3

st.title("Monitor")
db = database()
pick = pick_study(db, "monitor")
if pick is not None:
    live = st.toggle(f"Live (refresh every {REFRESH_S} s)", value=True, key="monitor_live")

    @st.fragment(run_every=REFRESH_S if live else None)
    def panel() -> None:
        monitor_view.draw(snapshot(db, pick["version_id"]))

    panel()
