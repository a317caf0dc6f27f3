"""Analysis: every analysis of `study.analysis` for one study version, with exclusion rules to
toggle, a power planner and the downloads. Cached per data version."""

import streamlit as st

from study.monitor import data_version
from ui.research import analysis_view as view
from ui.research import data, downloads
from ui.research.picker import database, pick_study

st.title("Analysis")
db = database()
pick = pick_study(db, "analysis")
if pick is None:
    st.stop()
slug, version, vid = pick["slug"], pick["version"], pick["version_id"]
fingerprint = data_version(db, vid)
spec = data.frames(db.url, slug, version, fingerprint)["spec"]
rules = view.exclusion_rules(spec, vid)
res = data.results(db.url, slug, version, fingerprint, tuple(rules))
view.summary(res, rules)

results_tab, flow_tab, maps_tab, power_tab, files_tab = st.tabs(
    ["Results", "Participant flow", "Maps vs. people", "Power planner", "Downloads"])
with results_tab:
    if res["trials"].empty:
        view.no_results(res)
    else:
        if res["scored"]:
            view.accuracy(res)
            if res["trials"].method.nunique() > 1:
                view.mixed_model(data.mixed_model(db.url, vid, fingerprint, tuple(rules), res["trials"]),
                                 res["trials"])
            view.pairwise(res)
        view.preference(res)
        view.ratings(res)
        view.response_times(res)
        view.questionnaire(res)
        for name, message in res["errors"].items():
            st.warning(f"{name} could not be computed on these data: {message}")
with flow_tab:
    view.flow(res)
with maps_tab:
    view.map_link(db, vid, res)
with power_tab:
    view.power_planner(res, spec)
with files_tab:
    downloads.buttons(db.url, slug, version, fingerprint)
