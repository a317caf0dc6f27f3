"""Example studies launched into a scratch database for the participant-page tests."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import yaml

from study.db import Database
from study.versions import launch

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "studies"
SYNTHETIC_EXAMPLES = ["forward_simulation", "distinction_within", "preference", "rating"]


def prolific_pid() -> str:
    """A fresh id in Prolific's format (24 hex characters)."""
    return secrets.token_hex(12)


def launch_example(db: Database, name: str, folder: Path, **over: Any) -> dict[str, Any]:
    """Launch `examples/studies/<name>.yaml` with its stimuli under `folder`; `over` replaces
    top-level keys (a dict value is merged one level deep). Returns the spec as launched."""
    spec = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    for key, value in over.items():
        spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) and isinstance(spec.get(key), dict) \
            else value
    spec.setdefault("stimuli", {})["dir"] = str(folder / f"stimuli-{spec['id']}")
    spec["recruitment"]["max_starts_per_client"] = None   # every test participant shares one address
    path = folder / f"{spec['id']}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    launch(db, path)
    return spec
