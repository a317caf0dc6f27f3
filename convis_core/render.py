"""The one renderer for every saliency method, so that people compare methods, not colour maps.

Styles:
- ``whitefade`` (the paper's figures): ``pixel = (1 - s**k) * white + s**k * pixel``; the image
  fades to white where the concept is absent. ``k`` defaults to 20 for ConVis grid maps and 4
  for every other method (the paper's stochastic setting); studies should fix it for all.
- ``heatmap``: the map in one perceptually uniform colormap (viridis), alpha 0.5, over the image.
- ``raw``: the map itself, grayscale.

Maps are upsampled to the original image with :meth:`ImageFrame.to_original` (bilinear, the
same for every method); the margins the model never saw (outside the centre square) show no
saliency. An optional contour marks ``map >= contour``. PNG bytes are deterministic for the same
inputs (no timestamps or metadata), so studies can store them by content hash.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image

from .images import ImageFrame, ImageInput, open_image
from .result import SaliencyResult

STYLES = ("whitefade", "heatmap", "raw")
COLORMAP = "viridis"
HEATMAP_ALPHA = 0.5
CONTOUR_RGB = (255, 64, 0)


@lru_cache(maxsize=1)
def _lut() -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps[COLORMAP](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def default_k(method: str | None) -> float:
    """White-fade exponent: 20 for ConVis grid maps, 4 otherwise (the paper's settings)."""
    return 20.0 if method == "convis_grid" else 4.0


def render(
    result: SaliencyResult,
    image: ImageInput,
    style: str = "whitefade",
    k: float | None = None,
    contour: float | None = None,
    max_side: int = 768,
) -> Image.Image:
    """Draw ``result`` over ``image`` (the original, not the 224 frame); returns an RGB image.

    ``max_side`` bounds the output size (the image is scaled down first, never up).
    """
    if style not in STYLES:
        raise ValueError(f"unknown style '{style}' (use one of: {', '.join(STYLES)})")
    im = open_image(image)
    f = result.frame
    if im.size != (f.width, f.height):  # e.g. a JPEG decoded at reduced scale earlier
        im = im.resize((f.width, f.height), Image.Resampling.BILINEAR)
    scale = min(1.0, max_side / max(f.width, f.height))
    if scale < 1.0:
        w, h = max(1, round(f.width * scale)), max(1, round(f.height * scale))
        im = im.resize((w, h), Image.Resampling.LANCZOS)
        f = ImageFrame.for_size(w, h)
    s = f.to_original(result.map, fill=0.0)
    px = np.asarray(im, dtype=np.float32)
    if style == "whitefade":
        kk = default_k(result.meta.get("method")) if k is None else float(k)
        a = (s**kk)[..., None]
        out = (1.0 - a) * 255.0 + a * px
    elif style == "heatmap":
        colour = _lut()[np.clip((s * 255).round().astype(int), 0, 255)].astype(np.float32)
        inside = np.zeros(s.shape, dtype=bool)
        inside[f.top : f.top + f.side, f.left : f.left + f.side] = True
        alpha = np.where(inside, HEATMAP_ALPHA, 0.0)[..., None]
        out = (1.0 - alpha) * px + alpha * colour
    else:
        out = np.repeat((s * 255.0)[..., None], 3, axis=2)
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if contour is not None:
        mask = s >= float(contour)
        from scipy import ndimage  # here, not at import: the command line lists STYLES

        edge = mask & ~ndimage.binary_erosion(mask, iterations=max(1, round(max(s.shape) / 300)))
        out[edge] = CONTOUR_RGB
    return Image.fromarray(out, mode="RGB")


def png_bytes(im: Image.Image) -> bytes:
    """Deterministic PNG encoding (no metadata)."""
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def render_png(result: SaliencyResult, image: ImageInput, style: str = "whitefade", **kwargs) -> bytes:
    """:func:`render` as deterministic PNG bytes."""
    return png_bytes(render(result, image, style=style, **kwargs))


def side_by_side(tiles: list[tuple[str, Image.Image]], columns: int = 4, tile: int = 256) -> Image.Image:
    """A labelled grid of images (for comparing methods), labels drawn under each tile."""
    from PIL import ImageDraw

    rows = (len(tiles) + columns - 1) // columns
    label_h = 18
    sheet = Image.new("RGB", (columns * tile, rows * (tile + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, im) in enumerate(tiles):
        r, c = divmod(i, columns)
        t = im.copy()
        t.thumbnail((tile, tile))
        x, y = c * tile + (tile - t.width) // 2, r * (tile + label_h)
        sheet.paste(t, (x, y))
        draw.text((c * tile + 4, y + tile + 2), label[:40], fill=(0, 0, 0))
    return sheet
