"""The page's state: session keys (all prefixed `explore_`) and the shareable link.

A link carries the image (`image=scene:ID`, `photo:NAME` or `study:SLUG/IMAGE`), the concept
(`concept=circle.n.01`), the method (`method=convis_grid`) and the bank ranks are counted over
(`bank=all`, `mode=definitions`). Values that do not check out are
ignored, each with a reason the page shows; the rest of the page goes on as if they were absent.
Uploads are not in links (their bytes live only in the browser session)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import streamlit as st

import convis_core as cc

P = "explore_"
#: the session keys the page reads between reruns
CONCEPT, SOURCE, SCENE, PHOTO, STUDY_IMAGE, METHOD = (P + k for k in ("concept", "src", "scene", "photo",
                                                                   "study_image", "method"))
WORD, NOTES, LINK_DONE = P + "word", P + "link_notes", P + "link_done"
BANK, MODE = P + "bank", P + "mode"
BANKS = ["all", "words=coco80", "subtree=physical_entity.n.01", "subtree=plane_figure.n.01"]
MODES = ["definitions", "lemmas"]

SOURCES = ("Shapes scene", "Photo", "Upload", "Study image")
PHOTOS = {"Cat (chelsea)": "chelsea", "Astronaut": "astronaut", "Coffee": "coffee", "Rocket": "rocket"}
#: a held-out Shapes-world scene (ids from convis_core.shapes.TEST_ID_START on were never trained on)
DEFAULT_SCENE = 1_000_044   # a circle, a triangle and a six on a gradient
SCENE_RANGE = (0, 10**9)
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,80}/[A-Za-z0-9_.-]{1,120}$")


@dataclass(frozen=True)
class ImageRef:
    """Where the image on screen comes from: `kind` is scene | photo | study | upload."""

    kind: str
    ref: str

    @property
    def link(self) -> str | None:
        return None if self.kind == "upload" else f"{self.kind}:{self.ref}"


def set_concept(name: str) -> None:
    """Make `name` the concept on screen (also what the word box shows). Call from callbacks."""
    st.session_state[CONCEPT] = name
    st.session_state[WORD] = name


def parse_image(value: str) -> tuple[ImageRef | None, str]:
    """An image reference from a link value, or (None, why it was ignored)."""
    kind, _, ref = value.partition(":")
    if kind == "scene":
        if ref.isdigit() and SCENE_RANGE[0] <= int(ref) <= SCENE_RANGE[1]:
            return ImageRef("scene", str(int(ref))), ""
        return None, f"'{value[:40]}' is not a scene number"
    if kind == "photo":
        if ref in PHOTOS.values():
            return ImageRef("photo", ref), ""
        return None, f"no sample photo '{ref[:40]}' (samples: {', '.join(PHOTOS.values())})"
    if kind == "study":
        if _SLUG.match(ref):
            return ImageRef("study", ref), ""
        return None, f"'{value[:60]}' is not a study image (study:SLUG/IMAGE)"
    return None, f"'{value[:40]}' is not an image reference (scene:ID, photo:NAME or study:SLUG/IMAGE)"


def apply_link() -> None:
    """Once per browser session: seed the state from the URL; notes say what was ignored."""
    if st.session_state.get(LINK_DONE):
        return
    st.session_state[LINK_DONE] = True
    qp, notes = st.query_params, []
    if "image" in qp:
        ref, why = parse_image(qp["image"])
        if ref is None:
            notes.append(f"image: {why}")
        elif ref.kind == "scene":
            st.session_state[SOURCE], st.session_state[SCENE] = SOURCES[0], int(ref.ref)
        elif ref.kind == "photo":
            st.session_state[SOURCE] = SOURCES[1]
            st.session_state[PHOTO] = next(k for k, v in PHOTOS.items() if v == ref.ref)
        else:
            st.session_state[SOURCE], st.session_state[STUDY_IMAGE] = SOURCES[3], ref.ref
    if "concept" in qp:
        name = qp["concept"].strip()
        if len(name) <= 200 and name in cc.nouns().index:  # the graph holds noun synsets only
            set_concept(name)
        else:
            notes.append(f"concept: '{name[:40]}' is not a WordNet noun synset")
    if "method" in qp:
        if qp["method"] in cc.REGISTRY:
            st.session_state[METHOD] = cc.REGISTRY[qp["method"]].label
        else:
            notes.append(f"method: '{qp['method'][:40]}' is not a method (known: {', '.join(cc.REGISTRY)})")
    for name, key, allowed in (("bank", BANK, BANKS), ("mode", MODE, MODES)):
        if name in qp:
            if qp[name] in allowed:
                st.session_state[key] = qp[name]
            else:
                notes.append(f"{name}: '{qp[name][:40]}' is not one of {', '.join(allowed)}")
    st.session_state[NOTES] = notes


def write_link(image: ImageRef | None, concept: str | None, method: str, bank: str, mode: str) -> None:
    """Keep the URL in step with what is on screen, so the address bar is a shareable link."""
    want = {"method": method, "bank": bank, "mode": mode}
    if image is not None and image.link:
        want["image"] = image.link
    if concept:
        want["concept"] = concept
    current = {k: st.query_params.get(k) for k in ("image", "concept", "method", "bank", "mode")}
    if {k: current.get(k) for k in want} != want or any(current[k] and k not in want for k in current):
        st.query_params.from_dict(want)
