"""The sidebar: model, concept bank, bank texts, and every method's parameters (generated from its
`Params` model by `ui.params_form`, so a method receives only what it takes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

import convis_core as cc
from convis_core.models import default_model_choice
from ui.explore import state as S
from ui.params_form import params_form

BANKS = S.BANKS
MODELS = {
    "Shapes-world toy model (bundled)": ("shapes-world", "bundled"),
    "Tiny model, RANDOM weights (plumbing only)": ("convis-tiny", "none"),
    "CLIP ViT-B/32 (OpenAI weights)": ("ViT-B-32-quickgelu", "openai"),
    "Custom (name + weights)": None,
}
MODEL, BANK, MODE = S.P + "model", S.BANK, S.MODE


@dataclass(frozen=True)
class Settings:
    name: str
    pretrained: str
    bank: str
    mode: str
    params: dict[str, dict[str, Any]]   # method -> the parameters that differ from its defaults


def sidebar() -> Settings:
    sb = st.sidebar
    default = default_model_choice()
    labels = list(MODELS)
    st.session_state.setdefault(MODEL, next((k for k in labels if MODELS[k] == default), labels[-1]))
    st.session_state.setdefault(S.P + "arch", default[0])     # $CONVIS_MODEL may name a model not listed
    st.session_state.setdefault(S.P + "weights", default[1])
    pick = sb.selectbox("CLIP model", labels, key=MODEL)
    if MODELS[pick] is None:
        name = sb.text_input("open_clip architecture", key=S.P + "arch")
        pretrained = sb.text_input("weights: tag, checkpoint path, or none", key=S.P + "weights")
    else:
        name, pretrained = MODELS[pick]
    bank = sb.selectbox("Concept bank (ranks are counted over it)", BANKS, key=BANK,
                        help="all = WordNet's 82,115 nouns, the paper's bank (the first use per model embeds "
                             "them once, a few minutes on a CPU; then cached on disk).")
    mode = sb.radio("Bank texts", S.MODES, horizontal=True, key=MODE)
    sb.markdown("**Method parameters**")
    params: dict[str, dict[str, Any]] = {}
    tabs = sb.tabs(list(cc.REGISTRY))
    for tab, (m, method) in zip(tabs, cc.REGISTRY.items(), strict=True):
        with tab:
            st.caption(f"**{method.label}**: {method.summary}")
            params[m] = params_form(method.Params, S.P + f"p_{m}")
            if not method.Params.model_fields:
                st.caption("No parameters.")
    return Settings(name, pretrained, bank, mode, params)
