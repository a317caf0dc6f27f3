"""The files a participant's page may receive: the images and maps one step's content names.

Only files listed in the version's manifest as an image or a map can be read, each checked
against its manifest sha256; `manifest.json` (which holds the model's concept scores, i.e. the
ground truth) and the per-map metadata are never given out, and no path can leave the folder.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from study.errors import StimulusError
from study.stimuli import MANIFEST, Manifest, sha256_bytes

ASSET_KEYS = ("image_file", "map")


def asset_paths(content: Any) -> list[str]:
    """Every file path a step's content references: `image_file` and `map` values and the values
    of `maps` dicts, at any depth; in order, without repeats."""
    out: list[str] = []
    stack = [content]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ASSET_KEYS and isinstance(value, str):
                    out.append(value)
                elif key == "maps" and isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
                    out.extend(value.values())
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return sorted(set(out), key=out.index)


def allowed_files(manifest: Manifest) -> dict[str, str]:
    """Relative path -> sha256 of every image and map of a manifest."""
    files = {im.file: im.sha256 for im in manifest.images.values()}
    files.update({st.map: st.map_sha256 for st in manifest.stimuli})
    return files


def step_assets(folder: str, allowed: dict[str, str], content: dict[str, Any]) -> dict[str, bytes]:
    """The bytes of the files `content` references, keyed by the path as written in `content`."""
    return {rel: read_asset(folder, rel, allowed.get(rel, "")) for rel in asset_paths(content)}


@lru_cache(maxsize=4096)
def read_asset(folder: str, rel: str, sha256: str) -> bytes:
    """One listed file of a stimulus folder, verified against its hash (cached per process)."""
    root = Path(folder).resolve()
    path = (root / rel).resolve()
    if not sha256 or not path.is_relative_to(root) or path.name == MANIFEST:
        raise StimulusError(f"{rel!r} is not an image or map of this study's stimuli")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StimulusError(f"stimulus file {rel!r} cannot be read: {exc.strerror}") from None
    if sha256_bytes(data) != sha256:
        raise StimulusError(f"stimulus file {rel!r} changed since the study was launched")
    return data
