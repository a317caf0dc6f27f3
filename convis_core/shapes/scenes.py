"""Seeded synthetic scenes: plane figures and handwritten digits on varied backgrounds.

Every object is a WordNet 3.0 noun synset (checked against the real WordNet in the tests):
``circle.n.01`` (under ``ellipse.n.01`` in WordNet), ``ellipse.n.01`` (under ``conic_section.n.01``),
``square.n.01`` (under ``rectangle.n.01``), ``rectangle.n.01``, ``triangle.n.01`` and
``hexagon.n.01`` (all under ``polygon.n.01``), and the digits ``one.n.01`` ... ``nine.n.01`` (under
``digit.n.01``) drawn from scikit-learn's bundled handwritten digits.

``render_scene(scene_id, ...)`` is a pure function of its arguments: the id seeds the generator.
Ids from ``TEST_ID_START`` on are held out: their digits come from a disjoint 20 % of the digit
samples, and the training script only ever uses ids below it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 224
TEST_ID_START = 1_000_000

SHAPE_CONCEPTS: tuple[str, ...] = (
    "circle.n.01",
    "ellipse.n.01",
    "square.n.01",
    "rectangle.n.01",
    "triangle.n.01",
    "hexagon.n.01",
)
DIGIT_CONCEPTS: tuple[str, ...] = tuple(
    f"{w}.n.01" for w in ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
)
ALL_CONCEPTS: tuple[str, ...] = SHAPE_CONCEPTS + DIGIT_CONCEPTS
#: The synset the model learns for views that show no object ("the part of a scene (or picture)
#: that lies behind objects in the foreground").
BACKGROUND_SYNSET = "background.n.02"
BACKGROUNDS: tuple[str, ...] = ("solid", "gradient", "noise", "uniform_noise", "blobs", "stripes", "checker")

_SUPERSAMPLE = 4


@dataclass(frozen=True)
class SceneObject:
    """One drawn object: its synset, box ``(x0, y0, x1, y1)`` (pixels, end-exclusive) and colour."""

    synset: str
    box: tuple[int, int, int, int]
    colour: tuple[int, int, int]
    rotation: float
    size: int


@dataclass
class Scene:
    """A rendered scene: RGB image, its objects and their soft masks ``(n, 224, 224)`` in [0, 1]."""

    scene_id: int
    image: Image.Image
    objects: list[SceneObject]
    masks: np.ndarray
    background: str
    meta: dict = field(default_factory=dict)

    @property
    def synsets(self) -> list[str]:
        return [o.synset for o in self.objects]


# ------------------------------------------------------------------------------------ digits
@lru_cache(maxsize=1)
def _digit_pools() -> dict[tuple[str, int], np.ndarray]:
    """sklearn's 8x8 digits (values 0..1), split 80/20 per class with a fixed seed."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = data.images.astype(np.float32) / 16.0
    pools: dict[tuple[str, int], np.ndarray] = {}
    rng = np.random.default_rng(20240523)
    for d in range(1, 10):
        idx = np.flatnonzero(data.target == d)
        idx = idx[rng.permutation(len(idx))]
        cut = int(round(0.8 * len(idx)))
        pools[("train", d)] = images[idx[:cut]]
        pools[("test", d)] = images[idx[cut:]]
    return pools


def digit_pool(digit: int, split: str) -> np.ndarray:
    """The 8x8 samples of ``digit`` (1..9) in ``split`` (``"train"`` or ``"test"``)."""
    return _digit_pools()[(split, digit)]


def split_of(scene_id: int) -> str:
    """``"test"`` for held-out ids (``>= TEST_ID_START``), else ``"train"``."""
    return "test" if scene_id >= TEST_ID_START else "train"


# ------------------------------------------------------------------------------------ shapes
def _rotate(points: np.ndarray, angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    r = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return points @ r.T


def _polygon_mask(points: np.ndarray) -> np.ndarray:
    """Antialiased mask of a polygon given in pixel units around the origin, cropped to its extent."""
    pts = points - points.min(axis=0) + 1.0
    w, h = (np.ceil(pts.max(axis=0)) + 2).astype(int)
    big = Image.new("L", (w * _SUPERSAMPLE, h * _SUPERSAMPLE), 0)
    ImageDraw.Draw(big).polygon([tuple(p) for p in (pts * _SUPERSAMPLE).tolist()], fill=255)
    return np.asarray(big.resize((w, h), Image.Resampling.BOX), dtype=np.float32) / 255.0


def _ellipse_points(a: float, b: float, n: int = 96) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([a * np.cos(t), b * np.sin(t)], axis=1)


def _shape_mask(concept: str, size: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Mask of a plane figure whose longer extent is about ``size`` px, and its rotation."""
    rot = float(rng.uniform(0, 360))
    if concept == "circle.n.01":
        pts, rot = _ellipse_points(size / 2, size / 2), 0.0
    elif concept == "ellipse.n.01":
        pts = _ellipse_points(size / 2, size / 2 * rng.uniform(0.38, 0.62))
    elif concept == "square.n.01":
        s = size / 2 / math.sqrt(2) * rng.uniform(1.0, 1.3)
        pts = np.array([[-s, -s], [s, -s], [s, s], [-s, s]])
    elif concept == "rectangle.n.01":
        a = size / 2
        b = a * rng.uniform(0.35, 0.6)
        pts = np.array([[-a, -b], [a, -b], [a, b], [-a, b]])
    elif concept == "triangle.n.01":
        arcs = 70.0 + 150.0 * rng.dirichlet([2.0, 2.0, 2.0])
        angles = np.radians(np.cumsum(np.concatenate([[0.0], arcs[:2]])))
        pts = np.stack([np.cos(angles), np.sin(angles)], axis=1) * size / 2 * 1.1
    elif concept == "hexagon.n.01":
        t = np.radians(np.arange(6) * 60.0)
        pts = np.stack([np.cos(t), np.sin(t) * rng.uniform(0.85, 1.0)], axis=1) * size / 2
    else:
        raise ValueError(f"not a plane figure of the Shapes world: {concept}")
    return _polygon_mask(_rotate(pts, rot)), rot


def _digit_mask(concept: str, size: float, rng: np.random.Generator, split: str) -> tuple[np.ndarray, float]:
    """Mask of a handwritten digit (a held-out sample for test scenes), upscaled and rotated a little."""
    digit = DIGIT_CONCEPTS.index(concept) + 1
    pool = digit_pool(digit, split)
    sample = pool[int(rng.integers(len(pool)))]
    side = max(int(round(size)), 12)
    aspect = rng.uniform(0.8, 1.0)
    img = Image.fromarray((sample * 255).astype(np.uint8)).resize(
        (max(int(side * aspect), 8), side), Image.Resampling.BICUBIC
    )
    rot = float(rng.uniform(-15, 15))
    img = img.rotate(rot, resample=Image.Resampling.BILINEAR, expand=True)
    v = np.asarray(img, dtype=np.float32) / 255.0
    thr = rng.uniform(0.3, 0.5)
    mask = np.clip((v - thr) / 0.12 + 0.5, 0.0, 1.0)
    return mask, rot


def _crop_to_content(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask > 0.02)
    if len(ys) == 0:
        return mask
    return mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def object_mask(concept: str, size: float, rng: np.random.Generator, split: str = "train") -> tuple[np.ndarray, float]:
    """A soft mask (cropped to its content) of one object of ``concept`` and its rotation."""
    if concept in DIGIT_CONCEPTS:
        mask, rot = _digit_mask(concept, size, rng, split)
    else:
        mask, rot = _shape_mask(concept, size, rng)
    return _crop_to_content(mask), rot


# ------------------------------------------------------------------------------- backgrounds
def _random_colour(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.15:
        return np.full(3, rng.uniform(0, 255), dtype=np.float32)
    h, s, v = rng.uniform(0, 1), rng.uniform(0.25, 1.0), rng.uniform(0.2, 1.0)
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, dtype=np.float32) * 255


def _texture_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    c1 = _random_colour(rng)
    delta = rng.normal(0, 1, 3)
    delta = delta / (np.linalg.norm(delta) + 1e-6) * rng.uniform(25, 70)
    return c1, np.clip(c1 + delta, 0, 255).astype(np.float32)


def make_background(kind: str, rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    """A ``(size, size, 3)`` float32 background of ``kind`` (one of ``BACKGROUNDS``)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if kind == "solid":
        return np.broadcast_to(_random_colour(rng), (size, size, 3)).astype(np.float32)
    if kind == "gradient":
        c1, c2 = _random_colour(rng), _random_colour(rng)
        a = rng.uniform(0, 2 * math.pi)
        t = (np.cos(a) * xx + np.sin(a) * yy) / size
        t = (t - t.min()) / (t.max() - t.min() + 1e-6)
        return (c1 * (1 - t[..., None]) + c2 * t[..., None]).astype(np.float32)
    if kind == "noise":
        c = _random_colour(rng)
        sigma = rng.uniform(8, 50)
        return np.clip(c + rng.normal(0, sigma, (size, size, 3)), 0, 255).astype(np.float32)
    if kind == "uniform_noise":
        return rng.integers(0, 255, (size, size, 3)).astype(np.float32)
    if kind == "blobs":
        cells = int(rng.integers(3, 9))
        low = np.stack([_random_colour(rng) for _ in range(cells * cells)]).reshape(cells, cells, 3)
        low = 0.5 * low + 0.5 * low.mean(axis=(0, 1))
        img = Image.fromarray(low.astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
        return np.asarray(img, dtype=np.float32)
    if kind == "stripes":
        c1, c2 = _texture_pair(rng)
        a = rng.uniform(0, math.pi)
        period = rng.uniform(6, 28)
        t = (np.sin((np.cos(a) * xx + np.sin(a) * yy) * 2 * math.pi / period) > 0).astype(np.float32)
        return (c1 * (1 - t[..., None]) + c2 * t[..., None]).astype(np.float32)
    if kind == "checker":
        c1, c2 = _texture_pair(rng)
        cell = int(rng.integers(5, 18))
        t = (((xx // cell) + (yy // cell)) % 2).astype(np.float32)
        return (c1 * (1 - t[..., None]) + c2 * t[..., None]).astype(np.float32)
    raise ValueError(f"unknown background kind: {kind}")


def _object_colour(bg_mean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A colour that stands out from the background's mean colour (RGB distance >= 110)."""
    best, best_d = None, -1.0
    for _ in range(40):
        c = _random_colour(rng)
        d = float(np.linalg.norm(c - bg_mean))
        if d >= 110:
            return c
        if d > best_d:
            best, best_d = c, d
    return best  # type: ignore[return-value]


# ------------------------------------------------------------------------------------ scenes
def _overlaps(box: tuple[int, int, int, int], others: list[tuple[int, int, int, int]], gap: int) -> bool:
    x0, y0, x1, y1 = box
    return any(x0 < b[2] + gap and b[0] < x1 + gap and y0 < b[3] + gap and b[1] < y1 + gap for b in others)


def render_scene(
    scene_id: int,
    n_objects: int | None = None,
    concepts: Sequence[str] | None = None,
    pool: Sequence[str] = ALL_CONCEPTS,
    background: str | None = None,
) -> Scene:
    """Render scene ``scene_id``: 1-4 non-overlapping objects on a random background.

    ``concepts`` fixes the objects' synsets (in order); otherwise ``n_objects`` (default: 1-4 at
    random) objects are drawn from ``pool`` without repeating a synset. The same arguments always
    give the same scene.
    """
    rng = np.random.default_rng([int(scene_id), 0x5EA5])
    split = split_of(scene_id)
    if concepts is None:
        n = int(n_objects) if n_objects is not None else int(rng.integers(1, 5))
        if not 1 <= n <= len(pool):
            raise ValueError(f"n_objects must be in 1..{len(pool)}")
        concepts = [pool[i] for i in rng.choice(len(pool), size=n, replace=False)]
    else:
        concepts = list(concepts)
        rng.integers(1, 5)  # keep the stream aligned with the random-count case
    for c in concepts:
        if c not in ALL_CONCEPTS:
            raise ValueError(f"not a Shapes-world concept: {c}")
    kind = background or BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    img = np.array(make_background(kind, rng), dtype=np.float32)
    bg_mean = img.mean(axis=(0, 1))

    n = len(concepts)
    lo, hi = {1: (48, 112), 2: (44, 96), 3: (40, 80), 4: (36, 72)}.get(n, (32, 60))
    boxes: list[tuple[int, int, int, int]] = []
    objects: list[SceneObject] = []
    masks: list[np.ndarray] = []
    for concept in concepts:
        size = float(rng.uniform(lo, hi))
        for _attempt in range(200):
            mask, rot = object_mask(concept, size, rng, split)
            h, w = mask.shape
            if h >= IMAGE_SIZE - 4 or w >= IMAGE_SIZE - 4:
                size *= 0.9
                continue
            x0 = int(rng.integers(2, IMAGE_SIZE - w - 1))
            y0 = int(rng.integers(2, IMAGE_SIZE - h - 1))
            box = (x0, y0, x0 + w, y0 + h)
            if not _overlaps(box, boxes, gap=6):
                break
            if _attempt % 20 == 19:
                size *= 0.9
        else:  # pragma: no cover - the size shrinks until it fits
            raise RuntimeError(f"could not place {n} objects in scene {scene_id}")
        full = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
        full[y0 : y0 + h, x0 : x0 + w] = mask
        colour = _object_colour(bg_mean, rng)
        region = img[y0 : y0 + h, x0 : x0 + w]
        img[y0 : y0 + h, x0 : x0 + w] = region * (1 - mask[..., None]) + colour * mask[..., None]
        ys, xs = np.nonzero(mask >= 0.5)
        tight = (x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1)
        boxes.append(box)
        masks.append(full)
        objects.append(
            SceneObject(
                synset=concept,
                box=tight,
                colour=tuple(int(v) for v in colour),  # type: ignore[arg-type]
                rotation=round(rot, 2),
                size=int(round(size)),
            )
        )
    image = Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8), "RGB")
    return Scene(
        scene_id=int(scene_id),
        image=image,
        objects=objects,
        masks=np.stack(masks),
        background=kind,
        meta={"split": split},
    )
