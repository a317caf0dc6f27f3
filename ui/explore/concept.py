"""The concept: a word or a synset name in, a WordNet noun synset out. An ambiguous word gets a
sense picker (WordNet's most frequent sense first), an unknown one the engine's own message with
suggestions to click, and a bank that lacks the concept's leaves says which banks hold them."""

from __future__ import annotations

import streamlit as st

import convis_core as cc
from ui.explore import state as S
from ui.explore.compute import banks_holding, leaf_counts

SENSE = S.P + "sense"


def _pick_sense() -> None:
    st.session_state[S.CONCEPT] = st.session_state[SENSE]


def _short(name: str) -> str:
    g = cc.nouns()
    i = g.index[name]
    return f"{name} — {g.definitions[i][:90]}"


def picker(container) -> str | None:  # noqa: ANN001 - a Streamlit container
    """Draw the word box (and a sense picker or suggestions); return the concept, or None."""
    g = cc.nouns()
    container.text_input("Concept: a word, or a synset such as dog.n.01", key=S.WORD,
                         help="Any of WordNet's 82,115 noun concepts. A word with several meanings "
                              "offers its senses, the most frequent first.")
    word = (st.session_state.get(S.WORD) or "").strip()
    if not word:
        st.session_state[S.CONCEPT] = None
        return None
    if word in g.index:
        st.session_state[S.CONCEPT] = word
        return word
    hits = [g.names[i] for i in g.search(word, k=12)]
    if not hits:
        st.session_state[S.CONCEPT] = None
        try:
            g.lookup(word)
            why = f"No WordNet noun matches '{word}'."
        except cc.ConvisError as e:
            why = f"No WordNet noun matches '{word[:60]}': {e}."
        container.warning(why, icon=":material/search_off:")
        row = container.container(horizontal=True, gap="small")
        for name in g.suggest(word):
            row.button(name, key=S.P + f"suggest_{name}", on_click=S.set_concept, args=(name,), type="tertiary",
                       help=g.definitions[g.index[name]])
        return None
    if st.session_state.get(S.CONCEPT) not in hits:
        st.session_state[S.CONCEPT] = hits[0]
    if len(hits) > 1:
        st.session_state[SENSE] = st.session_state[S.CONCEPT]
        container.selectbox(f"Meaning of '{word[:40]}' ({len(hits)} senses)", hits, key=SENSE, format_func=_short,
                            on_change=_pick_sense)
    return st.session_state[S.CONCEPT]


def _use_bank(bank: str) -> None:
    st.session_state[S.P + "bank"] = bank


def bank_check(container, concept: str, bank: str, mode: str, banks: list[str]) -> bool:  # noqa: ANN001
    """True when the bank holds some of the concept's leaves; otherwise say which banks do."""
    if leaf_counts(bank, mode, (concept,))[concept]:
        return True
    holding = banks_holding(concept, [b for b in banks if b != bank], mode)
    where = ", ".join(f"{b} ({n} of its leaves)" for b, n in holding.items()) or "none of the listed banks"
    container.error(f"The bank '{bank}' holds none of the leaves of {concept} (the concept and what lies "
                    f"below it), so ConVis cannot rank it there. Banks that hold them: {where}.",
                    icon=":material/account_tree:")
    row = container.container(horizontal=True, gap="small")
    for b in holding:
        row.button(f"Use bank {b}", key=S.P + f"use_bank_{b}", on_click=_use_bank, args=(b,))
    return False


def holds(concept: str, bank: str, mode: str) -> bool:
    """Whether the bank holds some of the concept's leaves."""
    return leaf_counts(bank, mode, (concept,))[concept] > 0
