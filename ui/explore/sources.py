"""Where an image comes from: a Shapes-world scene (known truth, the toy model's world), a sample
photo, an upload, or an image of a launched study. Every source hands over bytes; the engine's
safe loader (`convis_core.load_image`, the CLI's own) turns them into an image or a clear error."""

from __future__ import annotations

import io
from dataclasses import dataclass

import streamlit as st

from ui.explore import state as S


@dataclass(frozen=True)
class Picked:
    """The image the user picked: its reference (for links), a caption and its bytes (None while
    nothing is picked, e.g. an upload not made yet)."""

    ref: S.ImageRef
    caption: str
    raw: bytes | None
    truth: tuple[str, ...] = ()     # the synsets a Shapes scene holds


def _png(im) -> bytes:  # noqa: ANN001 - a PIL image
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


@st.cache_data(show_spinner=False, max_entries=64)
def scene_bytes(scene_id: int) -> tuple[bytes, tuple[str, ...]]:
    """A Shapes-world scene as PNG bytes and the synsets it holds."""
    from convis_core.shapes import render_scene

    scene = render_scene(int(scene_id))
    return _png(scene.image), tuple(scene.synsets)


@st.cache_data(show_spinner=False)
def photo_bytes(name: str) -> bytes:
    """One of scikit-image's bundled sample photos as PNG bytes."""
    from PIL import Image
    from skimage import data

    return _png(Image.fromarray(getattr(data, name)()))


@st.cache_data(show_spinner=False, ttl=60)
def study_images() -> dict[str, list[str]]:
    """Launched studies with built stimuli: slug -> image ids ({} when there is no database)."""
    from study.db import connect
    from study.overview import frozen_spec, study_rows
    from study.preview import preview_manifest

    out: dict[str, list[str]] = {}
    try:
        db = connect()
        for row in study_rows(db):
            spec = frozen_spec(db, row.slug) if row.version is not None else None
            if spec is None:
                continue
            try:
                out[row.slug] = sorted(preview_manifest(spec).images)
            except Exception:  # stimuli not built or moved: the study has no images to offer
                continue
    except Exception:  # no study database configured or reachable: this source is simply empty
        return {}
    return out


@st.cache_data(show_spinner=False, max_entries=32)
def study_image_bytes(slug: str, image_id: str) -> bytes | None:
    """The bytes of one study image, verified against its manifest hash (None if not found)."""
    from study.assets import read_asset
    from study.db import connect
    from study.overview import frozen_spec
    from study.preview import preview_manifest

    spec = frozen_spec(connect(), slug)
    if spec is None:
        return None
    entry = preview_manifest(spec).images.get(image_id)
    return None if entry is None else read_asset(str(spec.stimuli_dir()), entry.file, entry.sha256)


def picker(container) -> Picked:  # noqa: ANN001 - a Streamlit container
    """Draw the image source controls in `container`; return what is picked."""
    st.session_state.setdefault(S.SOURCE, S.SOURCES[0])
    st.session_state.setdefault(S.SCENE, S.DEFAULT_SCENE)
    src = container.segmented_control("Image", S.SOURCES, key=S.SOURCE, label_visibility="collapsed") or S.SOURCES[0]
    if src == "Shapes scene":
        sid = container.number_input("Scene number (from 1,000,000 on: never trained on)",
                                     min_value=S.SCENE_RANGE[0], max_value=S.SCENE_RANGE[1], step=1, key=S.SCENE)
        raw, truth = scene_bytes(int(sid))
        return Picked(S.ImageRef("scene", str(int(sid))), f"Shapes scene {int(sid)}: "
                      + ", ".join(t.split(".")[0] for t in truth), raw, truth)
    if src == "Photo":
        name = container.selectbox("Sample photo", list(S.PHOTOS), key=S.PHOTO)
        return Picked(S.ImageRef("photo", S.PHOTOS[name]), f"Sample photo: {name}", photo_bytes(S.PHOTOS[name]))
    if src == "Upload":
        up = container.file_uploader("Upload an image (PNG, JPEG, TIFF, WebP, …)", key=S.P + "upload")
        return Picked(S.ImageRef("upload", up.name if up else ""), f"Upload: {up.name}" if up else "Upload",
                      up.getvalue() if up is not None else None)
    found = study_images()
    options = [f"{slug}/{img}" for slug, imgs in found.items() for img in imgs]
    wanted = st.session_state.get(S.STUDY_IMAGE)
    if wanted and wanted not in options:
        container.info(f"The linked study image '{wanted}' is not in a launched study here.")
        st.session_state.pop(S.STUDY_IMAGE)
    if not options:
        container.info("No launched study with built stimuli yet (Studies page: precompute, then launch).")
        return Picked(S.ImageRef("study", ""), "Study image", None)
    pick = container.selectbox("Study image (study/image)", options, key=S.STUDY_IMAGE)
    slug, _, image_id = pick.partition("/")
    return Picked(S.ImageRef("study", pick), f"Study {slug}, image {image_id}", study_image_bytes(slug, image_id))
