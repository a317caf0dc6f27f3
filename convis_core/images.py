"""Loading images safely and the 224x224 centre-crop frame every map lives in.

Documented conversions: grayscale, palette and CMYK images become RGB; transparency (RGBA, LA,
palette with transparency) is composited over white; 16- and 32-bit images are scaled to 8 bits
by their full range; EXIF orientation is applied. Images over ``MAX_PIXELS`` are refused before
decoding; large JPEGs are decoded at a reduced scale (no memory blow-up). Images smaller than
``MIN_SIDE`` pixels on a side are refused.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidImageError

FRAME = 224
MAX_PIXELS = 120_000_000
MAX_FILE_BYTES = 200 * 1024 * 1024
MIN_SIDE = 8

ImageInput = str | Path | bytes | Image.Image | np.ndarray | IO[bytes]


@dataclass(frozen=True)
class ImageFrame:
    """How the 224x224 map frame sits in the original image: a centred square, resized.

    ``left, top, side`` give the square in original pixel coordinates.
    """

    width: int
    height: int
    left: int
    top: int
    side: int
    size: int = FRAME

    @classmethod
    def for_size(cls, width: int, height: int, size: int = FRAME) -> ImageFrame:
        """Centre square with the excess split floor (left/top) / ceil (right/bottom)."""
        side = min(width, height)
        return cls(width, height, (width - side) // 2, (height - side) // 2, side, size)

    def to_original(self, frame_map: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Upsample a ``(size, size)`` map onto the original image, ``(height, width)`` float32.

        Bilinear interpolation, the same for every method; pixels outside the centre square
        (never seen by the model) get ``fill``.
        """
        out = np.full((self.height, self.width), fill, dtype=np.float32)
        m = Image.fromarray(np.asarray(frame_map, dtype=np.float32), mode="F")
        m = m.resize((self.side, self.side), Image.Resampling.BILINEAR)
        out[self.top : self.top + self.side, self.left : self.left + self.side] = np.asarray(m)
        return out

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class LoadedImage:
    """An RGB image ready for the engine, with its 224x224 frame and a content hash."""

    original: Image.Image
    frame: ImageFrame
    pixels: np.ndarray  # (224, 224, 3) uint8, the centre-cropped, resized image
    sha256: str  # hash of ``pixels``: the image's identity in caches


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im).astype(np.float64)
        top = 65535.0 if im.mode.startswith("I;16") else max(float(a.max()), 1.0)
        if im.mode == "F":
            lo, hi = float(a.min()), float(a.max())
            a, top = a - lo, max(hi - lo, 1e-12)
        a = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(a, mode="L").convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def open_image(source: ImageInput) -> Image.Image:
    """Open and validate an image from a path, bytes, a file object, an array or a PIL image.

    Returns an RGB PIL image (conversions above). Raises :class:`InvalidImageError` with a
    one-line reason for anything unusable.
    """
    if isinstance(source, Image.Image):
        im = source
    elif isinstance(source, np.ndarray):
        arr = source
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
            raise InvalidImageError(f"array of shape {arr.shape} is not an image (H×W, H×W×3 or H×W×4)")
        if arr.dtype != np.uint8:
            arr = np.clip(arr.astype(np.float64) * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        im = Image.fromarray(arr.squeeze(-1) if arr.ndim == 3 and arr.shape[2] == 1 else arr)
    else:
        try:
            if isinstance(source, str | Path):
                path = Path(source)
                if not path.is_file():
                    raise InvalidImageError(f"image file not found: {path}")
                if path.stat().st_size > MAX_FILE_BYTES:
                    raise InvalidImageError(f"image file is too large ({path.stat().st_size >> 20} MB, limit {MAX_FILE_BYTES >> 20} MB)")
                im = Image.open(path)
            else:
                data = source if isinstance(source, bytes) else source.read()
                if len(data) > MAX_FILE_BYTES:
                    raise InvalidImageError(f"image file is too large ({len(data) >> 20} MB, limit {MAX_FILE_BYTES >> 20} MB)")
                if not data:
                    raise InvalidImageError("the image file is empty")
                im = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as e:
            raise InvalidImageError(f"image is too large: {e}") from e
        except UnidentifiedImageError as e:
            raise InvalidImageError("not an image file, or a format Pillow cannot read") from e
        except OSError as e:
            raise InvalidImageError(f"cannot read image: {e}") from e
    w, h = im.size
    if w * h > MAX_PIXELS:
        raise InvalidImageError(f"image is too large ({w}×{h} = {w * h / 1e6:.0f} MP, limit {MAX_PIXELS / 1e6:.0f} MP)")
    if min(w, h) < MIN_SIDE:
        raise InvalidImageError(f"image is too small ({w}×{h}); both sides must be at least {MIN_SIDE} px")
    try:
        if im.format == "JPEG" and min(w, h) > 4 * FRAME:
            im.draft("RGB", (max(w * 2 * FRAME // min(w, h), 1), max(h * 2 * FRAME // min(w, h), 1)))
        im = ImageOps.exif_transpose(im) or im
        im.load()
        return _to_rgb(im)
    except (OSError, SyntaxError, ValueError) as e:
        raise InvalidImageError(f"the image file is corrupt or truncated: {e}") from e
    except Image.DecompressionBombError as e:
        raise InvalidImageError(f"image is too large: {e}") from e


def frame_pixels(im: Image.Image, size: int = FRAME) -> tuple[np.ndarray, ImageFrame]:
    """Centre-crop to a square and resize (bicubic) to ``size``; returns uint8 pixels and frame.

    If a JPEG was decoded at reduced scale, the frame still refers to the reduced image size;
    callers that need the file's own size use ``original.size``.
    """
    frame = ImageFrame.for_size(*im.size, size=size)
    sq = im.crop((frame.left, frame.top, frame.left + frame.side, frame.top + frame.side))
    sq = sq.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(sq, dtype=np.uint8).copy(), frame


def load_image(source: ImageInput) -> LoadedImage:
    """Open, validate and frame an image (see the module docstring for conversions)."""
    im = open_image(source)
    pixels, frame = frame_pixels(im)
    return LoadedImage(im, frame, pixels, hashlib.sha256(pixels.tobytes()).hexdigest())
