"""Walk WordNet from the concept on screen: its hypernym path as breadcrumbs, its children
(hyponyms) and its siblings as buttons, each with how many of its leaves the bank holds. A click
makes that synset the concept, so the map redraws at once."""

from __future__ import annotations

import streamlit as st

import convis_core as cc
from ui.explore import state as S
from ui.explore.compute import leaf_counts

SHOWN = 10  # neighbours shown as buttons; the rest are one pick away in a list


def _label(name: str) -> str:
    return cc.nouns().synset(name).label


def _neighbours(i: int) -> tuple[list[str], list[str]]:
    g = cc.nouns()
    kids = [g.names[int(c)] for c in g.child_idx[g.child_ptr[i] : g.child_ptr[i + 1]]]
    parents = [int(p) for p in g.parent_idx[g.parent_ptr[i] : g.parent_ptr[i + 1]]]
    sibs = sorted({g.names[int(c)] for p in parents for c in g.child_idx[g.child_ptr[p] : g.child_ptr[p + 1]]}
                  - {g.names[i]})
    return kids, sibs


def _pick_more(key: str) -> None:
    name = st.session_state.get(key)
    if name:
        S.set_concept(name)


def _buttons(container, title: str, names: list[str], counts: dict[str, int], kind: str) -> None:  # noqa: ANN001
    if not names:
        container.caption(f"{title}: none")
        return
    order = sorted(names, key=lambda n: (-counts[n], n))
    container.caption(f"{title} ({len(names)}) · leaves in the bank")
    row = container.container(horizontal=True, gap="small")
    for name in order[:SHOWN]:
        row.button(f"{_label(name)} · {counts[name]}", key=S.P + f"{kind}_{name}", on_click=S.set_concept,
                   args=(name,), help=f"{name}: {cc.nouns().synset(name).definition}")
    if len(order) > SHOWN:
        key = S.P + f"{kind}_more"
        container.selectbox(f"{len(order) - SHOWN} more {title.lower()}", [None, *order[SHOWN:]], key=key,
                            format_func=lambda n: "…" if n is None else f"{n} · {counts[n]}",
                            on_change=_pick_more, args=(key,), label_visibility="collapsed")


def breadcrumbs(container, concept: str) -> None:  # noqa: ANN001
    """The hypernym path from entity.n.01 down to the concept; each step is a button."""
    g = cc.nouns()
    path = min(g.hypernym_paths(g.index[concept]), key=len)
    row = container.container(horizontal=True, gap=None, vertical_alignment="center")
    for name in path[:-1]:
        row.button(f"{_label(name)} ›", key=S.P + f"up_{name}", on_click=S.set_concept, args=(name,), type="tertiary",
                   help=f"{name}: {g.definitions[g.index[name]]}")
    row.markdown(f"**{_label(concept)}**", help=f"{concept}: {g.definitions[g.index[concept]]}")


def neighbours(container, concept: str, bank: str, mode: str) -> None:  # noqa: ANN001
    """Children and siblings of the concept to step to."""
    i = cc.nouns().index[concept]
    kids, sibs = _neighbours(i)
    counts = leaf_counts(bank, mode, tuple(sorted(set(kids) | set(sibs) | {concept})))
    container.caption(f"{concept}: {counts[concept]} of its leaves are in the bank {bank}")
    _buttons(container, "Children", kids, counts, "child")
    _buttons(container, "Siblings", sibs, counts, "sib")
