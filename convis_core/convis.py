"""ConVis (Giulivi & Boracchi 2024, arXiv 2405.14563): concept saliency from WordNet ranks.

A box's score is the rank of the concept's best leaf among all bank rows (0 = the subtree holds
the single best-matching text), counted as the number of rows with a strictly higher cosine
similarity. Two maps:

- ``grid`` (Algorithm 1): boxes of 128 and 64 px every 16 px over the image padded with noise;
  each box's rank is added to the pixels it covers; the frame is cut out, min-max normalised and
  inverted. Boxes that do not overlap the frame are skipped (the map is bit-identical).
- ``stochastic``: 600 boxes sampled in proportion to an accumulator that each box multiplies by
  ``1 + 0.002 * gamma(rank)``; restarts every 100 iterations; 64-px boxes from iteration 300.

Speed comes from reuse, not approximation: the crop embeddings of an image do not depend on the
concept, so they are computed once per (image, model, grid) and kept in memory and on disk; the
similarities of every crop with the whole bank are sorted once per (image, bank), after which a
concept's map is a gather, a binary search per box and a box sum.
"""

from __future__ import annotations

import io
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .bank import ConceptBank, bank_embeddings
from .boxes import Canvas, accumulate, gamma_score, grid_boxes
from .images import LoadedImage
from .models import ClipModel
from .paths import atomic_write_bytes, cache_dir
from .result import SaliencyResult, normalise

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class GridParams:
    """Parameters of the grid map; defaults are the reference's."""

    box_sizes: tuple[int, ...] = (128, 64)
    stride: int = 16
    pad: int = 128
    seed: int = 0
    scoring: str = "rank"  # "rank" (inverted) or "gamma"
    prune: bool = True

    def __post_init__(self) -> None:
        if not self.box_sizes or any(int(s) < 8 or int(s) > 1024 for s in self.box_sizes):
            raise ValueError("box sizes must be between 8 and 1024 px")
        if not 1 <= self.stride <= 256:
            raise ValueError("stride must be between 1 and 256 px")
        if not 0 <= self.pad <= 512:
            raise ValueError("padding must be between 0 and 512 px")
        if self.scoring not in ("rank", "gamma"):
            raise ValueError("scoring must be 'rank' or 'gamma'")
        object.__setattr__(self, "box_sizes", tuple(int(s) for s in self.box_sizes))

    @property
    def crop_key(self) -> str:
        """What the crops depend on (not the scoring)."""
        return f"b{'-'.join(map(str, self.box_sizes))}_s{self.stride}_p{self.pad}_seed{self.seed}_pr{int(self.prune)}"


@dataclass(frozen=True)
class StochasticParams:
    """Parameters of the stochastic map; defaults are the reference's."""

    iterations: int = 600
    box_sizes: tuple[int, int] = (128, 64)
    switch_at: int = 300
    restart_every: int = 100
    step: float = 0.002
    pad: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.iterations <= 100_000:
            raise ValueError("iterations must be between 1 and 100000")
        if len(self.box_sizes) != 2 or any(not 8 <= int(s) <= 1024 for s in self.box_sizes):
            raise ValueError("box_sizes must be two sizes between 8 and 1024 px")
        if self.restart_every < 1:
            raise ValueError("restart_every must be at least 1")
        object.__setattr__(self, "box_sizes", tuple(int(s) for s in self.box_sizes))


@dataclass
class CropSet:
    """Embeddings of an image's grid crops: ``boxes`` ``(m, 4)`` and ``embeddings`` ``(m, d)``."""

    boxes: np.ndarray
    embeddings: np.ndarray
    canvas_size: int
    seconds: float = 0.0
    from_cache: bool = False


#: Memory the in-memory rank indices may take together (the newest one always stays): one
#: image's index with the 82,115-definition bank and 730 crops is 2 x 240 MB.
INDEX_BUDGET = 768 * 2**20


@dataclass
class RankIndex:
    """Per image and bank: every crop's similarity with every bank row, in two layouts.

    ``by_row`` is ``(bank rows, crops)``, so that a concept's leaves are a gather of contiguous
    rows; ``sorted_sims`` is ``(crops, bank rows)``, each crop's similarities in ascending order,
    so that a rank is one binary search. Both are float32 (2 x 4 bytes per crop and row); the
    build sorts in slices of crops so that it never holds a third full-size array.
    """

    by_row: torch.Tensor
    sorted_sims: torch.Tensor

    SLICE = 32  # crops sorted at a time
    GATHER = 8192  # leaf rows gathered at a time

    @classmethod
    def build(cls, crop_embeddings: torch.Tensor, text: torch.Tensor) -> RankIndex:
        by_row = text @ crop_embeddings.to(text.dtype).T  # (rows, crops): the one product
        n_crops = by_row.shape[1]
        ordered = torch.empty((n_crops, by_row.shape[0]), dtype=by_row.dtype)
        for i in range(0, n_crops, cls.SLICE):
            ordered[i : i + cls.SLICE] = torch.sort(by_row[:, i : i + cls.SLICE].T, dim=1).values
        return cls(by_row, ordered)

    @property
    def nbytes(self) -> int:
        return self.by_row.nbytes + self.sorted_sims.nbytes

    def best(self, leaves: np.ndarray) -> torch.Tensor:
        """Per crop: the highest similarity among the bank rows ``leaves``."""
        idx = torch.from_numpy(np.asarray(leaves, dtype=np.int64))
        best = None
        for i in range(0, len(idx), self.GATHER):
            part = self.by_row.index_select(0, idx[i : i + self.GATHER]).amax(dim=0)
            best = part if best is None else torch.maximum(best, part)
        if best is None:
            raise ValueError("a concept needs at least one bank row")
        return best

    def ranks(self, leaves: np.ndarray) -> np.ndarray:
        """Per crop: the number of bank rows strictly more similar than the best leaf."""
        best = self.best(leaves)
        n = self.sorted_sims.shape[1]
        pos = torch.searchsorted(self.sorted_sims, best[:, None].contiguous(), right=True)
        return (n - pos[:, 0]).numpy().astype(np.int64)


class _LRU(OrderedDict):
    """A small LRU map; with ``max_bytes`` it also keeps the values' ``nbytes`` under a budget
    (the newest entry always stays)."""

    def __init__(self, size: int, max_bytes: int | None = None) -> None:
        super().__init__()
        self.size = size
        self.max_bytes = max_bytes

    def get_or(self, key, make):
        if key in self:
            self.move_to_end(key)
            return self[key]
        val = make()
        self[key] = val
        while len(self) > self.size or (len(self) > 1 and self._over_budget()):
            self.popitem(last=False)
        return val

    def _over_budget(self) -> bool:
        return self.max_bytes is not None and sum(v.nbytes for v in self.values()) > self.max_bytes


@dataclass
class ConVisEngine:
    """ConVis maps for one model and one bank, with per-image caches.

    ``disk_cache`` keeps crop embeddings under ``.data/cache/crops``; the in-memory caches hold
    the last few images' crops and rank indices.
    """

    model: ClipModel
    bank: ConceptBank
    batch_size: int = 64
    disk_cache: bool = True
    _crops: _LRU = field(default_factory=lambda: _LRU(8))
    _index: _LRU = field(default_factory=lambda: _LRU(2, max_bytes=INDEX_BUDGET))
    _single: dict = field(default_factory=dict)
    _text: np.ndarray | None = None

    # ------------------------------------------------------------------------------- texts
    @property
    def text_embeddings(self) -> np.ndarray:
        """The bank's embeddings (computed once per engine; on disk too with ``disk_cache``)."""
        if self._text is None:
            self._text = bank_embeddings(self.model, self.bank, use_cache=self.disk_cache)
        return self._text

    # ------------------------------------------------------------------------------- crops
    def crops(self, image: LoadedImage, params: GridParams, progress: Progress | None = None) -> CropSet:
        """The grid crops' embeddings for an image (memory, then disk, then CLIP)."""
        key = f"{image.sha256[:24]}-{params.crop_key}"
        return self._crops.get_or(key, lambda: self._crops_uncached(image, params, key, progress))

    def _crops_uncached(self, image: LoadedImage, params: GridParams, key: str,
                        progress: Progress | None) -> CropSet:
        path = cache_dir("crops", self.model.key) / f"{key}.npz" if self.disk_cache else None
        if path is not None and path.exists():
            z = np.load(path)
            return CropSet(z["boxes"], z["embeddings"], int(z["canvas_size"]), float(z["seconds"]), True)
        t0 = time.perf_counter()
        canvas = Canvas.make(image.pixels, params.pad, params.seed)
        boxes = grid_boxes(canvas.size, params.box_sizes, params.stride,
                           pad=params.pad if params.prune else None, frame=image.pixels.shape[0])
        emb = self.encode_boxes(canvas, boxes, progress)
        cs = CropSet(boxes, emb, canvas.size, time.perf_counter() - t0)
        if path is not None:
            buf = io.BytesIO()
            np.savez(buf, boxes=boxes, embeddings=emb, canvas_size=canvas.size, seconds=cs.seconds)
            atomic_write_bytes(path, buf.getvalue())
        return cs

    def encode_boxes(self, canvas: Canvas, boxes: np.ndarray, progress: Progress | None = None) -> np.ndarray:
        """Embeddings of the boxes' crops through CLIP's own preprocessing, in batches."""
        out = []
        for i in range(0, len(boxes), self.batch_size):
            batch = boxes[i : i + self.batch_size]
            pixels = self.model.preprocess_pil([canvas.crop(b) for b in batch])
            out.append(self.model.encode_images(pixels, batch_size=self.batch_size).numpy())
            if progress is not None:
                progress(min(i + self.batch_size, len(boxes)), len(boxes))
        return np.concatenate(out) if out else np.empty((0, self.model.embed_dim), dtype=np.float32)

    def rank_index(self, image: LoadedImage, params: GridParams, progress: Progress | None = None) -> RankIndex:
        """Similarities of the image's crops with the whole bank, sorted once per (image, bank)."""
        key = f"{image.sha256[:24]}-{params.crop_key}-{self.bank.key}"

        def make() -> RankIndex:
            cs = self.crops(image, params, progress)
            return RankIndex.build(torch.from_numpy(cs.embeddings), torch.from_numpy(self.text_embeddings))

        return self._index.get_or(key, make)

    # ------------------------------------------------------------------------------- maps
    def grid(self, image: LoadedImage, concept: str, params: GridParams | None = None,
             progress: Progress | None = None) -> SaliencyResult:
        """Algorithm 1 of the paper. See the module docstring."""
        params = params or GridParams()
        t0 = time.perf_counter()
        leaves = self.bank.leaves(concept)
        had_crops = f"{image.sha256[:24]}-{params.crop_key}" in self._crops
        index = self.rank_index(image, params, progress)
        t1 = time.perf_counter()
        ranks = index.ranks(leaves)
        cs = self.crops(image, params)
        scores = gamma_score(ranks) if params.scoring == "gamma" else ranks
        acc = accumulate(cs.boxes, scores, cs.canvas_size)
        n, p = image.pixels.shape[0], params.pad
        m = normalise(acc[p : p + n, p : p + n])
        if params.scoring == "rank" and m.max() > 0:
            m = (1.0 - m).astype(np.float32)
        t2 = time.perf_counter()
        timings = {"prepare_s": t1 - t0, "map_s": t2 - t1, "total_s": t2 - t0,
                   "crops_cached": had_crops or cs.from_cache, "crop_encoding_s": cs.seconds}
        return self._result("convis_grid", image, concept, asdict(params), m, timings, params.seed,
                            extras={"boxes": cs.boxes, "ranks": ranks, "leaves": leaves},
                            crops=len(cs.boxes))

    def single_rank(self, image: LoadedImage, canvas: Canvas, box: tuple[int, int, int, int],
                    leaves: np.ndarray, text: torch.Tensor) -> int:
        """The rank of one box (crop embeddings memoised per image and box)."""
        key = (image.sha256, self.model.key, canvas.pad, box)
        e = self._single.get(key)
        if e is None:
            e = self.encode_boxes(canvas, np.array([box]))[0]
            self._single[key] = e
        sims = text @ torch.from_numpy(e).to(text.dtype)
        return int((sims > sims[torch.from_numpy(leaves)].max()).sum())

    def stochastic(self, image: LoadedImage, concept: str, params: StochasticParams | None = None,
                   progress: Progress | None = None) -> SaliencyResult:
        """The stochastic variant (see the module docstring); sampler ``default_rng([seed, 1])``."""
        params = params or StochasticParams()
        t0 = time.perf_counter()
        leaves = self.bank.leaves(concept)
        text = torch.from_numpy(self.text_embeddings)
        n, p = image.pixels.shape[0], params.pad
        canvas = Canvas.make(image.pixels, p, params.seed)
        size = canvas.size
        region = n + p
        rng = np.random.default_rng([params.seed, 1])
        acc = np.ones((size, size), dtype=np.float64)
        total = np.zeros_like(acc)
        ranks = []
        for it in range(params.iterations):
            if it > 0 and it % params.restart_every == 0:
                total += acc
                acc[:] = 1.0
            s = params.box_sizes[0] if it < params.switch_at else params.box_sizes[1]
            prob = acc[:region, :region].ravel()
            k = int(rng.choice(prob.size, p=prob / prob.sum()))
            y, x = divmod(k, region)
            box = (y, x, min(y + s, size), min(x + s, size))
            rank = self.single_rank(image, canvas, box, leaves, text)
            ranks.append((y, x, s, rank))
            acc[box[0] : box[2], box[1] : box[3]] *= 1.0 + params.step * float(gamma_score(rank))
            if progress is not None:
                progress(it + 1, params.iterations)
        total += acc
        m = normalise(total[p : p + n, p : p + n])
        dt = time.perf_counter() - t0
        return self._result("convis_stochastic", image, concept, asdict(params), m, {"total_s": dt},
                            params.seed, extras={"samples": np.array(ranks), "leaves": leaves},
                            crops=params.iterations)

    def _result(self, method: str, image: LoadedImage, concept: str, params: dict, m: np.ndarray,
                timings: dict, seed: int, extras: dict, crops: int) -> SaliencyResult:
        g = self.bank.graph
        syn = g.synset(concept)
        meta = {
            "method": method,
            "concept": syn.name,
            "concept_definition": syn.definition,
            "params": params,
            "seed": seed,
            "timings": timings,
            "image_sha256": image.sha256,
            "crops": crops,
            "leaves_in_bank": int(len(extras["leaves"])),
            "flat": bool(m.max() == m.min()),
            **self.model.identity,
            **self.bank.identity,
        }
        return SaliencyResult(m, image.frame, meta, extras)




