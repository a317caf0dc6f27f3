"""Evaluation: the harness's saved runs (localisation and OOD detection), and new runs on the
Shapes-world sets as background jobs."""

import streamlit as st

from ui.research import evaluation_view

st.title("Evaluation")
evaluation_view.draw()
