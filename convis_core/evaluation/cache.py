"""The per-(image, method) result cache of a run: one small ``.npz`` per item, written atomically,
named by a hash of everything the result depends on, so a stopped run resumes where it stopped
and a resumed run's results equal an uninterrupted run's."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..paths import atomic_write_bytes


def item_key(**parts: Any) -> str:
    """A stable hash of JSON-able parts (sorted keys)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def file_sha256(path: Path) -> str:
    """Content hash of a file (an image's identity in the cache, whatever its path)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def read_item(path: Path) -> dict[str, Any] | None:
    """A cached record (arrays as arrays, the rest from its JSON), or None when absent/unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            rec = json.loads(str(z["_json"]))
            rec.update({k: z[k] for k in z.files if k != "_json"})
            return rec
    except (OSError, ValueError, KeyError):
        return None


def write_item(path: Path, record: dict[str, Any]) -> None:
    """Store a record: numpy arrays as arrays, everything else as JSON."""
    arrays = {k: v for k, v in record.items() if isinstance(v, np.ndarray)}
    rest = {k: v for k, v in record.items() if not isinstance(v, np.ndarray)}
    buf = io.BytesIO()
    np.savez_compressed(buf, _json=np.array(json.dumps(rest)), **arrays)
    atomic_write_bytes(Path(path), buf.getvalue())
