"""The bundled model's headline figures, read from the committed report (never typed in a page)."""

from __future__ import annotations

import json
from pathlib import Path

REPORT_JSON = Path(__file__).resolve().parent / "report" / "report.json"


def headline(path: Path = REPORT_JSON) -> str:
    """One sentence: 15-way classification and ConVis grid pointing on the report's scenes."""
    try:
        r = json.loads(path.read_text())
        cls, point = r["classification_15way"], r["pointing_game"]["convis_grid"]
    except (OSError, ValueError, KeyError, TypeError):
        return "Its evaluation report could not be read (convis_core/shapes/report/report.md)."
    return (f"On {r['split']} scenes (never trained on): {cls['value']:.1%} 15-way classification "
            f"({cls['n']} scenes), and ConVis grid points into the named object in {point['value']:.1%} "
            f"of {point['n']} two-object scenes (convis_core/shapes/report/report.md).")
