"""Create a study: from an example, an uploaded YAML, or a form (WordNet search for concepts,
registry methods with their parameters, images uploaded, on the server or from the Shapes world)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st
import yaml

from study import protocols
from study.db import Database
from study.drafts import save_draft, save_upload, save_zip
from study.errors import SpecError, StudyError
from study.labels import describe
from ui.params_form import params_form
from ui.research.spec_editor import annotate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "studies"
P = "new_"


def _saved(db: Database, text: str, base_dir: str | None) -> None:
    try:
        draft = save_draft(db, text, base_dir=base_dir)
    except SpecError as exc:
        st.error(f"{len(exc.problems)} problem(s); nothing was saved.")
        st.html(annotate(text, exc.problems))
        return
    st.session_state["studies_open"] = draft.slug
    st.session_state["studies_flash"] = f"Draft {draft.slug!r} saved. Precompute its stimuli, preview, then launch."
    st.rerun()


def new_study(db: Database) -> None:
    example, upload, form = st.tabs(["From an example", "Upload a YAML file", "Fill in a form"])
    with example:
        files = sorted(EXAMPLES.glob("*.yaml"))
        pick = st.selectbox("Example", files, format_func=lambda p: p.stem.replace("_", " "), key=P + "example")
        if pick is not None:
            text = pick.read_text()
            with st.expander("Its YAML"):
                st.code(text, language="yaml")
            if st.button("Create a draft from this example", key=P + "from_example", type="primary"):
                _saved(db, text, str(EXAMPLES))
    with upload:
        up = st.file_uploader("Study spec (.yaml)", type=["yaml", "yml"], key=P + "yaml")
        if up is not None and st.button("Create a draft from this file", key=P + "from_upload", type="primary"):
            try:
                text = up.getvalue().decode("utf-8")
            except UnicodeDecodeError:
                st.error("The file is not UTF-8 text.")
            else:
                _saved(db, text, None)
    with form:
        _form(db)


def _add(name: str) -> None:
    chosen = st.session_state.setdefault(P + "concepts", [])
    if name not in chosen:
        chosen.append(name)
    st.session_state[P + "chosen"] = list(chosen)


def _concepts() -> list[str]:
    """WordNet search: type a word, pick senses by name and definition."""
    chosen: list[str] = st.session_state.setdefault(P + "concepts", [])
    word = st.text_input("Find a concept (a noun)", key=P + "word", placeholder="e.g. circle, dog, vehicle")
    if word:
        import convis_core

        graph = convis_core.nouns()
        hits = [graph.names[i] for i in graph.search(word, k=8)]
        if not hits:
            st.warning(f"No WordNet noun matches {word!r}.")
        for name in hits:
            label = describe(name)
            c1, c2 = st.columns([5, 1])
            c1.markdown(f"**{label.name}** (`{name}`): {label.definition}")
            c2.button("Add", key=f"{P}add_{name}", disabled=name in chosen, on_click=_add, args=(name,))
    if chosen:
        st.session_state.setdefault(P + "chosen", list(chosen))
        keep = st.multiselect("Concepts of the study", chosen, key=P + "chosen",
                              format_func=lambda s: f"{describe(s).name} ({s})")
        st.session_state[P + "concepts"] = keep
        return keep
    return []


def _methods() -> tuple[list[str], dict[str, dict[str, Any]]]:
    import convis_core

    names = st.multiselect("Explanation methods", list(convis_core.REGISTRY), default=["convis_grid"],
                           format_func=lambda n: convis_core.REGISTRY[n].label, key=P + "methods")
    params: dict[str, dict[str, Any]] = {}
    for name in names:
        method = convis_core.REGISTRY[name]
        if method.Params.model_fields:
            with st.expander(f"{method.label}: parameters"):
                values = params_form(method.Params, f"{P}p_{name}")
            if values:
                params[name] = values
    return names, params


def _images(slug: str) -> dict[str, Any] | list[dict[str, str]] | None:
    source = st.radio("Images", ["Shapes world (known truth)", "Upload", "A folder on the server"],
                      horizontal=True, key=P + "img_source")
    if source.startswith("Shapes"):
        return {"shapes": int(st.number_input("Scenes", 2, 2000, 24, key=P + "shapes"))}
    if source == "Upload":
        files = st.file_uploader("Images (several files, or one .zip)", type=["png", "jpg", "jpeg", "webp", "zip"],
                                 accept_multiple_files=True, key=P + "files")
        saved: list[str] = []
        for f in files or []:
            try:
                saved += save_zip(slug, f.getvalue()) if f.name.lower().endswith(".zip") \
                    else [save_upload(slug, f.name, f.getvalue())]
            except StudyError as exc:
                st.error(f"{f.name}: {exc}")
        return [{"file": s} for s in saved] or None
    folder = st.text_input("Folder on the server", key=P + "folder")
    return {"folder": folder} if folder else None


def _form(db: Database) -> None:
    c1, c2 = st.columns(2)
    slug = c1.text_input("Short id (letters, digits, - and _)", key=P + "slug", placeholder="my-study")
    title = c2.text_input("Title participants see", key=P + "title")
    protocol = st.selectbox("Protocol", list(protocols.REGISTRY), key=P + "protocol")
    with st.expander("Protocol options"):
        options = params_form(protocols.get(protocol).Config, f"{P}o_{protocol}")
    concepts = _concepts()
    if "n_candidates" in protocols.get(protocol).Config.model_fields and "n_candidates" not in options:
        default = protocols.get(protocol).Config.model_fields["n_candidates"].default
        if len(concepts) < default:
            options["n_candidates"] = max(2, len(concepts))
    methods, params = _methods()
    images = _images(slug or "unnamed")
    c1, c2, c3, c4 = st.columns(4)
    trials = c1.number_input("Trials", 1, 500, 12, key=P + "trials")
    practice = c2.number_input("Practice trials", 0, 20, 2, key=P + "practice")
    design = c3.selectbox("Design", ["between", "within"], key=P + "design")
    control = c4.checkbox("No-explanation control", key=P + "control",
                          disabled=not protocols.get(protocol).supports_control)
    c1, c2 = st.columns(2)
    code = c1.text_input("Prolific completion code", key=P + "code")
    target = c2.number_input("Participants per condition", 1, 10_000, 20, key=P + "target")
    consent = st.text_area("Consent text", "This is a research study about explanations of an AI model. "
                           "You can stop at any time; withdrawing deletes your answers.", key=P + "consent")
    instructions = st.text_area("Instructions", key=P + "instructions")
    if st.button("Create the draft", key=P + "from_form", type="primary"):
        spec = {"id": slug, "title": title, "consent": consent, "instructions": instructions,
                "stimuli": {"source": "engine", **({"params": params} if params else {})},
                "images": images, "concepts": concepts, "methods": methods,
                "protocol": {"name": protocol, **({"options": options} if options else {})}, "design": {"type": design, "control": bool(control)},
                "trials": int(trials), "practice": {"trials": int(practice)},
                "recruitment": {"completion_code": code, "target_per_condition": int(target)}}
        _saved(db, yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), None)
