"""Explore: pick an image and a WordNet concept, see CLIP's saliency map for it."""

from __future__ import annotations

import streamlit as st

import convis_core as cc
from convis_core.models import default_model_choice
from ui.params_form import params_form

SAMPLES = {"Cat (chelsea)": "chelsea", "Astronaut": "astronaut", "Coffee": "coffee", "Rocket": "rocket"}
BANKS = ["all", "words=coco80", "subtree=physical_entity.n.01", "subtree=plane_figure.n.01"]
P = "explore_"  # session-state prefix of this page


def apply_query_params() -> None:
    """Seed the widgets once from a shareable URL (?sample=&word=&bank=&method=&mode=).

    Unknown or malformed values are ignored with a visible note; nothing else changes.
    """
    if st.session_state.get(P + "qp_done"):
        return
    st.session_state[P + "qp_done"] = True
    qp = st.query_params
    allowed = {
        "sample": ({v: k for k, v in SAMPLES.items()}, P + "sample"),
        "bank": ({b: b for b in BANKS}, P + "bank"),
        "method": ({n: m.label for n, m in cc.REGISTRY.items()}, P + "method"),
        "mode": ({"definitions": "definitions", "lemmas": "lemmas"}, P + "mode"),
    }
    ignored = []
    for name, (values, key) in allowed.items():
        if name in qp:
            if qp[name] in values:
                st.session_state[key] = values[qp[name]]
            else:
                ignored.append(name)
    if "word" in qp:
        word = qp["word"]
        if 0 < len(word) <= 100 and all(c.isalnum() or c in " ._-'" for c in word):
            st.session_state[P + "word"] = word
        else:
            ignored.append("word")
    if ignored:
        st.session_state[P + "qp_ignored"] = ignored


@st.cache_resource(show_spinner="Loading the model…")
def model_for(name: str, pretrained: str) -> cc.ClipModel:
    return cc.load_model(name, pretrained)


@st.cache_data(show_spinner=False)
def sample_bytes(name: str) -> bytes:
    import io

    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(getattr(data, name)()).save(buf, format="PNG")
    return buf.getvalue()


def sidebar() -> tuple[str, str, str, str, str, dict]:
    st.sidebar.header("Model")
    default = default_model_choice()
    choices = {
        "Shapes-world demo model (toy, bundled)": ("shapes-world", "bundled"),
        "Tiny model, RANDOM weights (plumbing only)": ("convis-tiny", "none"),
        "CLIP ViT-B/32 (OpenAI weights)": ("ViT-B-32-quickgelu", "openai"),
        "Custom (name + weights)": None,
    }
    labels = list(choices)
    start = next((i for i, k in enumerate(labels) if choices[k] == default), 0)
    pick = st.sidebar.selectbox("CLIP model", labels, index=start, key=P + "model")
    if choices[pick] is None:
        name = st.sidebar.text_input("open_clip architecture", "ViT-B-32-quickgelu", key=P + "arch")
        pretrained = st.sidebar.text_input("weights: tag, checkpoint path, or none", "none", key=P + "weights")
    else:
        name, pretrained = choices[pick]
    st.sidebar.header("Explanation")
    methods = {m.label: n for n, m in cc.REGISTRY.items()}
    method = methods[st.sidebar.selectbox("Method", list(methods), key=P + "method")]
    bank = st.sidebar.selectbox(
        "Concept bank (ranks are counted over it)",
        BANKS,
        key=P + "bank",
        help="all = the 82,115 WordNet nouns (the first use per model embeds them once, then it is cached)",
    )
    mode = st.sidebar.radio("Bank texts", ["definitions", "lemmas"], horizontal=True, key=P + "mode")
    with st.sidebar.expander(f"{cc.REGISTRY[method].label}: parameters"):
        params = params_form(cc.REGISTRY[method].Params, P + f"p_{method}")
    return name, pretrained, method, bank, mode, params


def image_picker() -> bytes | None:
    src = st.radio("Image", ["Sample photo", "Upload"], horizontal=True, key=P + "src")
    if src == "Upload":
        up = st.file_uploader("Upload an image (PNG, JPEG, …)", key=P + "upload")
        return up.getvalue() if up is not None else None
    return sample_bytes(SAMPLES[st.selectbox("Sample", list(SAMPLES), key=P + "sample")])


def concept_picker() -> str | None:
    st.session_state.setdefault(P + "word", "cat")
    word = st.text_input("Concept (a word, or a synset name such as dog.n.01)", key=P + "word")
    if not word.strip():
        return None
    g = cc.nouns()
    if word.strip() in g.index:
        return word.strip()
    hits = g.search(word, k=12)
    if not hits:
        st.warning(f"No WordNet noun matches '{word}'. Did you mean: {', '.join(g.suggest(word)) or '—'}?")
        return None
    labels = [f"{g.names[i]} — {g.definitions[i]}" for i in hits]
    return g.names[hits[labels.index(st.selectbox("Meaning", labels, key=P + "sense"))]]


def main() -> None:
    st.title("ConVis: what does CLIP see of a concept?")
    st.caption("Saliency maps for any WordNet noun concept (Giulivi & Boracchi 2024).")
    apply_query_params()
    if st.session_state.get(P + "qp_ignored"):
        st.info(f"Ignored invalid link parameters: {', '.join(st.session_state[P + 'qp_ignored'])}")
    name, pretrained, method, bank, mode, params = sidebar()
    try:
        model = model_for(name, pretrained)
    except cc.ConvisError as e:
        st.error(f"Model not available: {e}")
        return
    if model.random_weights:
        st.error("⚠️ RANDOM WEIGHTS: this model was never trained. Its maps carry no meaning; use it "
                 "only to check the plumbing.", icon="⚠️")
    elif model.name == "shapes-world":
        st.warning("Toy model: a small CLIP trained here on synthetic shapes and digits. It knows "
                   "circles, ellipses, polygons and the digits 1-9 on plain backgrounds, not photos "
                   "(held-out scenes: 98.7 % zero-shot, ConVis points into the named object in 92 % "
                   "of two-object scenes; convis_core/shapes/report/report.md). Read its maps on "
                   "photos as a demonstration of the plumbing only.")
    left, right = st.columns(2)
    with left:
        raw = image_picker()
        concept = concept_picker()
        style = st.radio("Display", list(cc.STYLES), horizontal=True, key=P + "style")
        go = st.button("Explain", type="primary", key=P + "go", disabled=raw is None or concept is None)
    if raw is None:
        return
    try:
        image = cc.load_image(raw)
    except cc.ConvisError as e:
        left.error(f"Cannot use this image: {e}")
        return
    with right:
        if go and concept:
            bar = st.progress(0.0, text="Working…")
            try:
                res = cc.explain(model, image, concept, method=method, bank=bank, text_mode=mode, **params,
                                 progress=lambda d, t: bar.progress(min(d / max(t, 1), 1.0), text=f"{d}/{t}"))
            except cc.ConvisError as e:
                bar.empty()
                st.error(str(e))
                return
            bar.empty()
            st.session_state[P + "result"] = res
        res = st.session_state.get(P + "result")
        if res is not None and res.meta.get("image_sha256") == image.sha256:
            st.image(cc.render_png(res, image.original, style=style),
                     caption=f"{res.meta['method_label']} · {res.meta['concept']} · "
                             f"{res.meta['timings']['total_s']:.1f} s"
                             + (" · RANDOM WEIGHTS" if res.random_weights else ""))
            with st.expander("Metadata"):
                st.json(res.meta)
        else:
            st.image(raw, caption="Pick a concept and press Explain")
    with st.expander("What CLIP sees in this image (best concepts of the bank)"):
        if st.button("Find concepts", key=P + "top"):
            try:
                hits = cc.top_concepts(model, image, k=10, bank=bank, text_mode=mode)
                st.dataframe([h.__dict__ for h in hits], hide_index=True)
            except cc.ConvisError as e:
                st.error(str(e))


main()
