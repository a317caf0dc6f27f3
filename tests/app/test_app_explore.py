"""The Explore page through Streamlit's AppTest, on the real engine: the first visit, every method
with every one of its controls, bad uploads (the same message as the CLI), unknown and ambiguous
words, a bank that lacks the concept's leaves, walking WordNet, shareable links, side by side with
its metrics and zip, and "what CLIP sees here".

Small settings keep it quick: the plane-figure bank (61 synsets) and coarse grids."""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydantic import BaseModel
from streamlit.testing.v1 import AppTest

import convis_core as cc
from convis_core.cli import main as cli_main

APP = str(Path(__file__).resolve().parents[2] / "app.py")
SMALL_BANK = "subtree=plane_figure.n.01"
#: coarse settings for the slow methods (the defaults are the papers'; tests only need the plumbing)
FAST = {"explore_bank": SMALL_BANK, "explore_p_convis_grid_stride": 64, "explore_p_convis_stochastic_iterations": 12,
        "explore_p_rise_n_masks": 16, "explore_p_occlusion_stride": 64}
TINY = "Tiny model, RANDOM weights (plumbing only)"


def explore(db: Any, model: str | None = None, query: dict[str, str] | None = None, **state: Any) -> AppTest:
    """The app as a logged-in researcher on the Explore page (the login itself: test_login.py)."""
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["research_logged_in"] = True
    for k, v in {**FAST, **state}.items():
        at.session_state[k] = v
    if model:
        at.session_state["explore_model"] = model
    at.query_params.update(query or {})
    return at.run()


def texts(at: AppTest, *kinds: str) -> str:
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_first_visit_opens_on_a_shapes_scene_with_a_concept_and_its_map(db):
    at = explore(db)
    ok(at)
    assert at.segmented_control(key="explore_src").value == "Shapes scene"
    assert at.session_state["explore_concept"] == "circle.n.01"   # an object of the default scene
    res = at.session_state["explore_result"]
    assert res.meta["method"] == "convis_grid" and res.meta["concept"] == "circle.n.01"
    assert res.meta["model"] == "shapes-world" and not res.random_weights
    assert "Toy model" in texts(at, "caption") and "Server time for this map" in texts(at, "caption")
    assert at.query_params["image"] == "scene:1000044" and at.query_params["concept"] == "circle.n.01"
    assert not at.error and not at.warning
    # photos are one click away, with the toy-model notice
    at.segmented_control(key="explore_src").set_value("Photo").run()
    ok(at)
    assert any("never seen a photo" in w.value for w in at.warning)
    assert at.query_params["image"] == "photo:chelsea"


def test_a_new_image_shows_a_coarse_map_first_then_the_final_one(db):
    fresh = int(np.random.default_rng().integers(2_000_000, 3_000_000))   # crops not cached anywhere
    at = explore(db, query={"image": f"scene:{fresh}", "concept": "circle.n.01"})
    ok(at)
    assert at.session_state["explore_stages"] == ["coarse", "final"]
    final = at.session_state["explore_result"]
    assert final.meta["stage"] == "final"
    again = cc.explain(cc.load_model_cached("shapes-world", "bundled"), final_image(fresh), final.meta["concept"],
                       bank=SMALL_BANK, stride=64)
    np.testing.assert_array_equal(final.map, again.map)      # the page shows the engine's faithful map


def final_image(scene_id: int) -> Image.Image:
    from convis_core.shapes import render_scene

    return render_scene(scene_id).image


def _other_value(info: Any, default: Any) -> Any:
    """A valid value that differs from a field's default (within its bounds)."""
    if isinstance(default, bool):
        return not default
    if isinstance(default, str):
        return "gamma" if default == "rank" else default + "x"
    hi = next((getattr(m, "le", None) or getattr(m, "lt", None) for m in info.metadata
               if hasattr(m, "le") or hasattr(m, "lt")), None)
    step = 1 if isinstance(default, int) else round(abs(default) * 0.5 or 0.1, 6)
    value = default + step
    if hi is not None and value >= hi:
        value = default - step
    return value


def _widget(at: AppTest, key: str) -> Any:
    for kind in ("number_input", "checkbox", "text_input", "selectbox"):
        found = [w for w in getattr(at, kind) if w.key == key]
        if found:
            return found[0]
    return None


def test_every_method_with_every_control_runs_through_the_page(db):
    """Each registry entry through the page, each of its parameters changed from the default: the
    map's metadata carries the new value and nothing the method does not take."""
    at = explore(db, model=TINY)
    ok(at)
    assert any("RANDOM WEIGHTS" in e.value for e in at.error), "random weights must be flagged on screen"
    at.text_input(key="explore_word").input("circle").run()
    for name, method in cc.REGISTRY.items():
        fields: type[BaseModel] = method.Params
        changed = {}
        for field, info in fields.model_fields.items():
            w = _widget(at, f"explore_p_{name}_{field}")
            if w is None:   # compound fields (box size tuples) keep the method's default
                continue
            value = _other_value(info, info.default)
            w.set_value(value)
            changed[field] = value
        at.selectbox(key="explore_method").select(method.label).run()
        ok(at)
        errors = [e.value for e in at.error if "RANDOM WEIGHTS" not in e.value]
        assert not errors, (name, errors)
        res = at.session_state["explore_result"]
        assert res.meta["method"] == name and res.meta["concept"] == "circle.n.01"
        for field, value in changed.items():
            assert res.meta["params"][field] == pytest.approx(value), (name, field)
        assert set(res.meta["params"]) <= set(fields.model_fields), name
        assert at.query_params["method"] == name
    # every display style through the one renderer
    for style in cc.STYLES:
        at.segmented_control(key="explore_style").set_value(style).run()
        ok(at)


def test_a_method_the_model_cannot_run_says_why(db):
    at = explore(db)     # the Shapes-world tower is a CNN: attention relevance needs a ViT
    at.selectbox(key="explore_method").select(cc.REGISTRY["attention_relevance"].label).run()
    ok(at)
    assert any("cannot explain this model" in i.value and "Vision Transformer" in i.value for i in at.info)


# ------------------------------------------------------------------------------ uploads
def _png_with_size(width: int, height: int) -> bytes:
    """A valid small PNG whose header claims `width` x `height` (a huge image or a bomb)."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF)
    return bytes(data)


def _encoded(im: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def bad_files() -> dict[str, bytes]:
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    good_png = _encoded(rgb, "PNG")
    frames = [Image.new("RGB", (32, 32), c) for c in ("red", "blue")]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], loop=0)
    return {
        "corrupt.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
        "truncated.png": good_png[: len(good_png) // 2],
        "huge.png": _png_with_size(12_000, 11_000),
        "bomb.png": _png_with_size(40_000, 40_000),
        "sixteen.png": _encoded(Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)), "PNG"),
        "cmyk.jpg": _encoded(rgb.convert("CMYK"), "JPEG"),
        "animated.gif": gif.getvalue(),
        "drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><circle r="9"/></svg>',
        "one_pixel.png": _encoded(Image.new("RGB", (1, 1)), "PNG"),
        "sliver.png": _encoded(Image.new("RGB", (900, 3)), "PNG"),
    }


def cli_outcome(path: Path, capsys: pytest.CaptureFixture[str]) -> str | None:
    """What the command line says about the file: its one error line's message, or None."""
    capsys.readouterr()
    code = cli_main(["concepts", str(path), "--top", "1", "--model", "convis-tiny", "--pretrained", "none",
                     "--bank", SMALL_BANK])
    err = capsys.readouterr().err.strip().splitlines()
    if code == 0:
        return None
    line = next(x for x in err if x.startswith("error: "))
    return line.removeprefix("error: ")


def test_bad_uploads_get_the_same_message_as_the_cli(db, tmp_path, capsys):
    at = explore(db, model=TINY)
    at.segmented_control(key="explore_src").set_value("Upload").run()
    ok(at)
    refused = set()
    for name, data in bad_files().items():
        path = tmp_path / name
        path.write_bytes(data)
        expected = cli_outcome(path, capsys)
        at.file_uploader(key="explore_upload").set_value((name, data, "application/octet-stream")).run()
        ok(at)
        shown = [e.value for e in at.error if e.value.startswith("Cannot use this image")]
        if expected is None:
            assert not shown, (name, shown)
            assert at.session_state["explore_result"].meta["image_sha256"] == cc.load_image(data).sha256, name
        else:
            refused.add(name)
            assert shown == [f"Cannot use this image: {expected}"], (name, shown, expected)
    # 16-bit, CMYK and animated images are converted (documented in convis_core.images), the rest refused
    assert refused == {"corrupt.png", "truncated.png", "huge.png", "bomb.png", "drawing.svg", "one_pixel.png",
                       "sliver.png"}


# ------------------------------------------------------------------------------ words and banks
def test_unknown_words_get_suggestions_to_click(db):
    at = explore(db)
    at.text_input(key="explore_word").input("elipse").run()
    ok(at)
    assert at.session_state["explore_concept"] is None
    assert any("No WordNet noun matches 'elipse'" in w.value for w in at.warning)
    suggestion = at.button(key="explore_suggest_ellipse.n.01")
    suggestion.click().run()
    ok(at)
    assert at.session_state["explore_concept"] == "ellipse.n.01"
    assert at.session_state["explore_result"].meta["concept"] == "ellipse.n.01"
    at.text_input(key="explore_word").input("run.v.01").run()       # a verb: the engine's own message
    ok(at)
    assert any("verb synset" in w.value for w in at.warning)


def test_an_ambiguous_word_offers_its_senses(db):
    at = explore(db, model=TINY, explore_method=cc.REGISTRY["centre"].label)   # a method without a bank
    at.text_input(key="explore_word").input("square").run()
    ok(at)
    sense = at.selectbox(key="explore_sense")
    assert sense.options[0].startswith("square.n.01") and len(sense.options) > 3
    assert at.session_state["explore_concept"] == "square.n.01"   # WordNet's most frequent sense first
    sense.select_index(1).run()
    ok(at)
    second = at.session_state["explore_concept"]
    assert second != "square.n.01" and second.startswith("square.n.")
    assert at.session_state["explore_result"].meta["concept"] == second


def test_a_bank_lacking_the_leaves_says_which_bank_holds_them(db):
    at = explore(db, model=TINY)
    at.text_input(key="explore_word").input("dog.n.01").run()
    ok(at)
    msg = next(e.value for e in at.error if "holds none of the leaves" in e.value)
    assert f"The bank '{SMALL_BANK}'" in msg and "all (" in msg and "subtree=physical_entity.n.01 (" in msg
    at.button(key="explore_use_bank_words=coco80").click().run()
    ok(at)
    assert at.session_state["explore_bank"] == "words=coco80"
    assert not any("holds none of the leaves" in e.value for e in at.error)


# ------------------------------------------------------------------------------ walking WordNet
def test_walking_wordnet_redraws_the_map(db):
    at = explore(db)
    ok(at)
    assert at.session_state["explore_concept"] == "circle.n.01"
    crumbs = [b.label for b in at.button if b.key.startswith("explore_up_")]
    assert crumbs[0] == "entity ›" and crumbs[-1] == "ellipse ›"
    bank = cc.get_bank(SMALL_BANK)
    held = len(np.unique(bank.row_synset[bank.leaves("ellipse.n.01")]))     # ellipse, circle and below
    at.button(key="explore_up_ellipse.n.01").click().run()               # up to a hypernym
    ok(at)
    assert at.session_state["explore_result"].meta["concept"] == "ellipse.n.01"
    assert at.text_input(key="explore_word").value == "ellipse.n.01"
    assert held > 2 and f"ellipse.n.01: {held} of its leaves are in the bank {SMALL_BANK}" in texts(at, "caption")
    at.button(key="explore_child_circle.n.01").click().run()             # down to a child
    ok(at)
    assert at.session_state["explore_result"].meta["concept"] == "circle.n.01"
    child = next(b for b in at.button if b.key.startswith("explore_child_"))
    child.click().run()
    ok(at)
    assert at.session_state["explore_result"].meta["concept"] == child.key.removeprefix("explore_child_")
    sibling = next(b for b in at.button if b.key.startswith("explore_sib_"))
    sibling.click().run()
    ok(at)
    assert at.session_state["explore_result"].meta["concept"] == sibling.key.removeprefix("explore_sib_")
    assert at.query_params["concept"] == sibling.key.removeprefix("explore_sib_")


# ------------------------------------------------------------------------------ links
def test_a_shared_link_opens_its_image_concept_and_method(db):
    at = explore(db, query={"image": "scene:1000004", "concept": "circle.n.01", "method": "centre",
                            "bank": "words=coco80", "mode": "lemmas"})
    ok(at)
    assert (at.session_state["explore_bank"], at.session_state["explore_mode"]) == ("words=coco80", "lemmas")
    assert at.number_input(key="explore_scene").value == 1000004
    res = at.session_state["explore_result"]
    assert (res.meta["concept"], res.meta["method"]) == ("circle.n.01", "centre")
    assert not at.info or not any("Ignored" in i.value for i in at.info)


def test_tampered_link_values_are_ignored_with_a_note(db):
    at = explore(db, query={"image": "scene:../../etc", "concept": "<script>", "method": "rm -rf",
                            "bank": "subtree=../x", "mode": "1;DROP"})
    ok(at)
    notes = " ".join(i.value for i in at.info if "Ignored from the link" in i.value)
    assert all(f"{k}:" in notes for k in ("image", "concept", "method", "bank", "mode"))
    res = at.session_state["explore_result"]        # the page goes on with its defaults
    assert (res.meta["concept"], res.meta["method"]) == ("circle.n.01", "convis_grid")
    at = explore(db, query={"image": "photo:nope"})
    assert any("no sample photo 'nope'" in i.value for i in at.info)


# ------------------------------------------------------------------------------ side by side
def test_every_method_side_by_side_with_metrics_and_a_zip(db):
    at = explore(db, model=TINY, explore_word="circle.n.01", explore_concept="circle.n.01")
    at.toggle(key="explore_compare").set_value(True).run()
    ok(at)
    fast = [m for m in cc.REGISTRY if m not in ("occlusion", "rise")]
    assert at.session_state["explore_grid_done"] == sorted(fast)      # the slow ones only when asked
    at.checkbox(key="explore_grid_with_occlusion").check()
    at.checkbox(key="explore_grid_with_rise").check().run()
    ok(at)
    assert at.session_state["explore_grid_done"] == sorted(cc.REGISTRY)
    at.segmented_control(key="explore_grid_style").set_value("whitefade").run()
    at.number_input(key="explore_grid_k").set_value(8.0).run()
    ok(at)
    at.button(key="explore_auc_go").click().run()
    ok(at)
    table = next(d.value for d in at.dataframe if "deletion AUC (lower is better)" in d.value.columns)
    assert len(table) == len(cc.REGISTRY) and np.isfinite(table.iloc[:, 1:].to_numpy(dtype=float)).all()
    at.number_input(key="explore_sanity_k").set_value(1)
    at.button(key="explore_sanity_go").click().run()
    ok(at)
    sanity = next(d.value for d in at.dataframe if "flagged" in d.value.columns)
    assert len(sanity) == len(cc.REGISTRY)
    flagged = dict(zip(sanity["method"], sanity["flagged"], strict=True))
    assert flagged[cc.REGISTRY["centre"].label].startswith("⚠")     # ignores the model: must be flagged
    at.button(key="explore_zip_go").click().run()
    ok(at)
    from ui.explore import compute

    blob = next(v for k, v in reversed(compute.store().items.items()) if k[0] == "zip")   # the newest
    names = set(zipfile.ZipFile(io.BytesIO(blob)).namelist())
    assert {"grid.png", "summary.json"} | {f"maps/{m}.{x}" for m in cc.REGISTRY for x in ("png", "npy", "json")} <= names
    summary = json.loads(zipfile.ZipFile(io.BytesIO(blob)).read("summary.json"))
    assert summary["concept"] == "circle.n.01" and summary["whitefade_k"] == 8.0
    assert "deletion_auc" in summary["methods"]["convis_grid"]


def test_what_clip_sees_here_clicks_into_a_map(db):
    at = explore(db)
    assert not [b for b in at.button if b.key.startswith("explore_see_")]   # drawn only when asked for
    at.segmented_control(key="explore_section").set_value("What CLIP sees here").run()
    ok(at)
    whole = [b for b in at.button if b.key.startswith("explore_see_whole_")]
    region = [b for b in at.button if b.key.startswith("explore_see_region_")]
    assert len(whole) == 8 and len(region) == 8      # AppTest cannot drag: the default box is used
    region[0].click().run()
    ok(at)
    assert at.session_state["explore_result"].meta["concept"] == region[0].key.removeprefix("explore_see_region_")
