"""Regenerate docs/example.png: ConVis grid maps of a Shapes-world scene with the bundled model.

    .venv/bin/python scripts/make_readme_figure.py [--bank all] [--scene 1000001]

Shows the scene, then white-fade maps for a few concepts (objects in the scene and a hypernym),
labelled with the model, so the README's picture is reproducible.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import convis_core as cc  # noqa: E402
from convis_core.render import side_by_side  # noqa: E402
from convis_core.shapes.scenes import render_scene  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bank", default="all")
    ap.add_argument("--scene", type=int, default=1_000_001)
    ap.add_argument("--out", default="docs/example.png")
    a = ap.parse_args()
    model = cc.load_model("shapes-world", "bundled")
    scene = render_scene(a.scene)
    present = [o.synset for o in scene.objects]
    concepts = present[:3] + ["polygon.n.01", "digit.n.01"]
    tiles = [("scene: " + ", ".join(p.split(".")[0] for p in present), scene.image)]
    for c in dict.fromkeys(concepts):
        r = cc.explain(model, scene.image, c, method="convis_grid", bank=a.bank)
        tiles.append((f"{c}", cc.render(r, scene.image, style="whitefade")))
        print(c, f"{r.meta['timings']['total_s']:.1f} s", flush=True)
    sheet = side_by_side(tiles, columns=len(tiles), tile=224)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(a.out)
    print("wrote", a.out, f"(model shapes-world, bank {a.bank})")


if __name__ == "__main__":
    main()
