"""Bad input gets a clear error or a documented conversion."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from convis_core import explain, load_image, nouns
from convis_core.errors import EmptyConceptError, InvalidImageError, UnknownConceptError

BANK = "subtree=animal.n.01"


def png_with_header_size(width: int, height: int) -> bytes:
    """A tiny valid PNG whose header claims ``width`` x ``height`` (a decompression bomb's shape)."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(data)


def test_not_images(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    for src in (tmp_path / "a.txt", tmp_path / "missing.png", b"", b"\x89PNG\r\n\x1a\n garbage"):
        with pytest.raises(InvalidImageError):
            load_image(src)


def test_truncated_jpeg(tmp_path, chelsea):
    buf = io.BytesIO()
    chelsea.save(buf, format="JPEG")
    with pytest.raises(InvalidImageError, match="corrupt|truncated|cannot"):
        load_image(buf.getvalue()[: len(buf.getvalue()) // 3])


def test_huge_image_refused_before_decoding():
    with pytest.raises(InvalidImageError, match="too large"):
        load_image(png_with_header_size(40_000, 40_000))


def test_large_jpeg_is_decoded_reduced(tmp_path):
    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (3000, 4000, 3), dtype=np.uint8))
    p = tmp_path / "big.jpg"
    big.save(p, quality=60)
    img = load_image(p)
    assert img.pixels.shape == (224, 224, 3)
    assert max(img.original.size) < 4000, "decoded at reduced scale (draft mode)"
    assert img.frame.width / img.frame.height == pytest.approx(4 / 3, rel=0.01)


def test_tiny_image():
    with pytest.raises(InvalidImageError, match="too small"):
        load_image(Image.new("RGB", (4, 40)))
    assert load_image(Image.new("RGB", (8, 8), "red")).pixels[0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I;16", "I", "F", "1"])
def test_modes_become_rgb(mode):
    rgb = np.zeros((40, 60, 3), dtype=np.uint8)
    rgb[:, 30:] = 200
    im = Image.fromarray(rgb).convert("L").convert(mode) if mode not in ("I;16", "I", "F") else None
    if mode == "I;16":
        a = np.zeros((40, 60), dtype=np.uint16)
        a[:, 30:] = 65535
        im = Image.fromarray(a)
        assert im.mode == "I;16"
    elif mode in ("I", "F"):
        im = Image.fromarray(np.where(np.arange(60) >= 30, 4000, 0).repeat(40).reshape(60, 40).T.astype(
            np.int32 if mode == "I" else np.float32))
    img = load_image(im)
    assert img.pixels.shape == (224, 224, 3) and img.pixels.dtype == np.uint8
    left, right = img.pixels[:, :50].mean(), img.pixels[:, -50:].mean()
    assert right > left + 50, f"{mode}: bright half stays bright"


def test_transparency_over_white():
    im = Image.new("RGBA", (30, 30), (0, 0, 0, 0))
    assert load_image(im).pixels.min() == 255
    p = Image.new("P", (30, 30), 0)
    p.putpalette([10, 20, 30] * 256)
    p.info["transparency"] = 0
    assert load_image(p).pixels.min() == 255


def test_sixteen_bit_png_file(tmp_path):
    a = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(a).save(path)
    px = load_image(path).pixels
    assert px[0, 0, 0] < 10 and px[-1, -1, 0] > 245


def test_concepts(tiny_model, chelsea):
    g = nouns()
    with pytest.raises(UnknownConceptError, match="did you mean"):
        g.lookup("cta.n.01")
    with pytest.raises(UnknownConceptError, match="verb"):
        g.lookup("run.v.01")
    with pytest.raises(UnknownConceptError, match="not a synset name"):
        g.lookup("dog'; DROP TABLE x;--")
    with pytest.raises(UnknownConceptError):
        explain(tiny_model, chelsea, "cat.n.99", bank=BANK)
    with pytest.raises(EmptyConceptError, match="no leaves"):
        explain(tiny_model, chelsea, "circle.n.01", bank=BANK)
