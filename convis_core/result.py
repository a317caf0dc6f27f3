"""The one result object every saliency method returns."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .images import ImageFrame
from .paths import atomic_write_bytes


@dataclass
class SaliencyResult:
    """A saliency map for one concept on one image.

    Attributes:
        map: ``(224, 224)`` float32 in [0, 1], over the centre-cropped 224x224 frame; 1 = the
            concept is strongest there.
        frame: where that frame sits in the original image (:meth:`to_original` undoes the crop).
        meta: JSON-able: ``method``, ``concept``, ``params``, model identity (``model``,
            ``pretrained``, ``weights_id``, ``random_weights``), ``bank``, ``seed``, ``timings``.
        extras: method-specific arrays (e.g. ConVis per-box ranks), not serialised to JSON.
    """

    map: np.ndarray
    frame: ImageFrame
    meta: dict[str, Any]
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        m = np.asarray(self.map, dtype=np.float32)
        if m.ndim != 2 or not np.isfinite(m).all():
            raise ValueError("a saliency map must be a finite 2-D array")
        if m.min() < -1e-6 or m.max() > 1 + 1e-6:
            raise ValueError(f"a saliency map must lie in [0, 1], got [{m.min()}, {m.max()}]")
        self.map = np.clip(m, 0.0, 1.0)

    @property
    def random_weights(self) -> bool:
        """True when the model had random weights: the map carries no meaning."""
        return bool(self.meta.get("random_weights", False))

    def to_original(self, fill: float = 0.0) -> np.ndarray:
        """The map on the original image's pixel grid, ``(H, W)`` float32."""
        return self.frame.to_original(self.map, fill=fill)

    def metadata_json(self) -> str:
        return json.dumps({**self.meta, "frame": self.frame.as_dict()}, indent=2, sort_keys=True, default=_jsonable)

    def save(self, path: str | Path) -> None:
        """Write ``path`` (``.npy`` map) and ``path`` with ``.json`` (metadata and frame)."""
        path = Path(path)
        import io

        buf = io.BytesIO()
        np.save(buf, self.map)
        atomic_write_bytes(path, buf.getvalue())
        atomic_write_bytes(path.with_suffix(".json"), self.metadata_json().encode())

    @classmethod
    def load(cls, path: str | Path) -> SaliencyResult:
        path = Path(path)
        meta = json.loads(path.with_suffix(".json").read_text())
        frame = ImageFrame(**meta.pop("frame"))
        return cls(np.load(path), frame, meta)


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o)}")


def normalise(a: np.ndarray) -> np.ndarray:
    """Min-max normalise to [0, 1] as float32; a constant map becomes all zeros (no signal)."""
    a = np.asarray(a, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    if hi - lo <= 0:
        return np.zeros(a.shape, dtype=np.float32)
    return ((a - lo) / (hi - lo)).astype(np.float32)
