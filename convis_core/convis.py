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
concept, so they are computed once per (image, model, grid) and kept in memory and on disk; every
bank row's rank for every crop is counted once per (image, bank) (:class:`RankIndex`), after which
a concept's map is a gather, a minimum per box and a box sum.

A cold grid map is computed as a stream: the crops on the grid of twice the stride come first (a
quarter of them, all reused by the full grid), the next batch of crops is cut and preprocessed on
a worker thread while one is encoded, and each encoded batch's ranks are counted on another
worker as the next batch encodes. :meth:`ConVisEngine.grid_progressive` yields the coarse map as
soon as its crops are in, then the full map; :meth:`ConVisEngine.grid` is the same stream without
the preview, so both give the same bits.
"""

from __future__ import annotations

import io
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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
#: image's index with the 82,115-definition bank and 730 crops is 127 MB, so four images fit.
INDEX_BUDGET = 768 * 2**20
#: Images whose rank index stays in memory (a return to one of them costs no product and sort).
INDEX_IMAGES = 4


def competition_ranks(sims: np.ndarray) -> np.ndarray:
    """Per row of ``sims`` ``(k, n)``: for each entry, how many entries of its row are strictly
    greater (0 for the row's maximum; equal values share a rank), as int32 ``(k, n)``.

    float32 rows are sorted as 64-bit keys (the value's order-preserving bits, then the column)
    with NumPy's SIMD sort, which is many times faster here than an argsort; other dtypes use an
    argsort. Both compare values exactly (``-0.0`` equals ``0.0``, as in a float comparison).
    """
    x = np.ascontiguousarray(sims) + 0.0  # -0.0 -> +0.0
    k, n = x.shape
    if x.dtype == np.float32:
        u = x.view(np.uint32)
        key = u ^ (np.uint32(0) - (u >> np.uint32(31)) | np.uint32(0x80000000))  # ascending order
        packed = key.astype(np.uint64)
        packed <<= np.uint64(32)
        packed |= np.arange(n, dtype=np.uint64)
        packed.sort(axis=1)
        cols = (packed & np.uint64(0xFFFFFFFF)).astype(np.intp)
        packed >>= np.uint64(32)
        ordered = packed  # the sorted keys: equal keys <=> equal values
    else:
        cols = np.argsort(x, axis=1, kind="stable")
        ordered = np.take_along_axis(x, cols, axis=1)
    # entries <= the one at sorted position i: (last position holding an equal value) + 1
    last = np.full((k, n), n, dtype=np.int32)
    last[:, -1] = n - 1
    np.copyto(last[:, :-1], np.arange(n - 1, dtype=np.int32), where=ordered[:, 1:] != ordered[:, :-1])
    del ordered
    last = np.minimum.accumulate(last[:, ::-1], axis=1)[:, ::-1]
    out = np.empty((k, n), dtype=np.int32)
    np.put_along_axis(out, cols, (n - 1) - last, axis=1)
    return out


@dataclass
class RankIndex:
    """Per image and bank: the rank of every bank row for every crop, counted once.

    A row's rank for a crop is the number of bank rows with a strictly higher similarity, so a
    concept's rank for a crop (the rank of its best leaf, :meth:`ranks`) is the smallest rank
    among its leaf rows: a gather of the leaves' rows and a minimum, with no float left to
    compare. Ranks are stored as ``high`` (``rank >> shift``, uint16, ``(rows, crops)``) and the
    ``shift`` low bits as bit planes packed over rows (``shift`` is 0 for banks of up to 65,536
    rows, 1 for the 82,115 nouns): 2.125 bytes per row and crop for the 82,115-row bank (127 MB
    with 730 crops) instead of two float32 arrays (479 MB). The minimum is taken over ``high``
    (one uint16 gather); only the leaves that reach it are looked up in the bit planes.

    Columns fill in arrival order (:meth:`add`), one batch of crops at a time: the similarities
    of a batch are one product with the bank, then ranked (:func:`competition_ranks`).
    """

    high: np.ndarray
    low_bits: np.ndarray
    columns: np.ndarray
    filled: int = 0

    GATHER = 16384  # leaf rows gathered at a time (person.n.01 has 10,297 in the noun bank)
    RANK_SLICE = 16  # crops ranked at a time

    @classmethod
    def empty(cls, rows: int, crops: int) -> RankIndex:
        shift = max(0, int(rows - 1).bit_length() - 16)
        return cls(np.zeros((rows, crops), dtype=np.uint16),
                   np.zeros((shift, (rows + 7) // 8, crops), dtype=np.uint8),
                   np.full(crops, -1, dtype=np.int64))

    @classmethod
    def build(cls, crop_embeddings: torch.Tensor, text: torch.Tensor, slice_size: int = 64) -> RankIndex:
        """The whole index from all crops at once (in slices of ``slice_size`` crops)."""
        n = crop_embeddings.shape[0]
        index = cls.empty(text.shape[0], n)
        for i in range(0, n, slice_size):
            index.add(np.arange(i, min(i + slice_size, n)), similarities(text, crop_embeddings[i : i + slice_size]))
        return index

    @property
    def shift(self) -> int:
        return self.low_bits.shape[0]

    def add(self, crops: np.ndarray, sims: np.ndarray) -> None:
        """Rank the bank for a batch of crops: ``sims`` ``(rows, len(crops))``."""
        for i in range(0, len(crops), self.RANK_SLICE):  # bounded temporaries (~50 MB at 82,115 rows)
            r = competition_ranks(sims[:, i : i + self.RANK_SLICE].T)  # (slice, rows)
            cols = slice(self.filled, self.filled + len(r))
            self.high[:, cols] = (r >> self.shift).astype(np.uint16).T
            for b in range(self.shift):
                bit = ((r >> b) & 1).astype(bool)
                self.low_bits[b, :, cols] = np.packbits(bit, axis=1, bitorder="little").T
            self.columns[cols] = crops[i : i + self.RANK_SLICE]
            self.filled += len(r)

    @property
    def nbytes(self) -> int:
        return self.high.nbytes + self.low_bits.nbytes + self.columns.nbytes

    def ranks(self, leaves: np.ndarray) -> np.ndarray:
        """Per crop (in crop order): the smallest rank among the bank rows ``leaves``, that is
        the number of rows strictly more similar than the best leaf; -1 for crops not added yet."""
        idx = np.asarray(leaves, dtype=np.intp)
        if idx.size == 0:
            raise ValueError("a concept needs at least one bank row")
        chunks = [idx[i : i + self.GATHER] for i in range(0, len(idx), self.GATHER)]
        gathered = [self._gather(chunks[0])] if len(chunks) == 1 else None
        top = None
        for i, c in enumerate(chunks):
            part = (gathered[i] if gathered else self._gather(c)).min(axis=0)
            top = part if top is None else np.minimum(top, part)
        best = top.astype(np.int64) << self.shift
        if self.shift:  # the smallest low part among the leaves that reach the minimum
            full = np.uint8((1 << self.shift) - 1)
            low = None
            for i, c in enumerate(chunks):
                g = gathered[i] if gathered else self._gather(c)
                part = np.where(g == top, self._low_part(c), full).min(axis=0)
                low = part if low is None else np.minimum(low, part)
            best |= low
        out = np.full(len(self.columns), -1, dtype=np.int64)
        out[self.columns[: self.filled]] = best
        return out

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        """``high`` of some rows, filled columns only: ``(len(rows), filled)`` uint16."""
        return np.take(self.high, rows, axis=0)[:, : self.filled]

    def _low_part(self, rows: np.ndarray) -> np.ndarray:
        """The low ``shift`` bits of some rows' ranks, ``(len(rows), filled)`` uint8."""
        byte, bit = rows >> 3, (rows & 7).astype(np.uint8)[:, None]
        out = np.zeros((len(rows), self.filled), dtype=np.uint8)
        for b in range(self.shift):
            plane = np.take(self.low_bits[b], byte, axis=0)[:, : self.filled]
            plane >>= bit
            plane &= 1
            if b:
                plane <<= b
            out |= plane
        return out


def similarities(text: torch.Tensor, crop_embeddings: torch.Tensor | np.ndarray) -> np.ndarray:
    """Cosine similarities ``(rows, crops)`` of the bank with some crops: one matrix product.

    Products of one crop are computed as two columns: a matrix-vector product can round
    differently from the matrix product every other batch size uses.
    """
    e = torch.as_tensor(crop_embeddings).to(text.dtype)
    one = e.shape[0] == 1
    if one:
        e = torch.cat([e, e])
    s = (text @ e.T).numpy()
    return s[:, :1].copy() if one else s


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
        return self.put(key, make())

    def put(self, key, val):
        self[key] = val
        self.move_to_end(key)
        while len(self) > self.size or (len(self) > 1 and self._over_budget()):
            self.popitem(last=False)
        return val

    def _over_budget(self) -> bool:
        return self.max_bytes is not None and sum(v.nbytes for v in self.values()) > self.max_bytes


def preview_mask(boxes: np.ndarray, stride: int) -> np.ndarray:
    """The boxes whose corner lies on the grid of twice the stride: exactly the boxes of the grid
    map with stride ``2 * stride`` (a quarter of the crops, all reused by the full grid)."""
    return (boxes[:, 0] % (2 * stride) == 0) & (boxes[:, 1] % (2 * stride) == 0)


@dataclass
class ConVisEngine:
    """ConVis maps for one model and one bank, with per-image caches.

    ``disk_cache`` keeps crop embeddings under ``.data/cache/crops``; the in-memory caches hold
    the last few images' crops and rank indices (:data:`INDEX_IMAGES` indices).
    """

    model: ClipModel
    bank: ConceptBank
    batch_size: int = 64
    disk_cache: bool = True
    #: cut and preprocess the next batch, and rank the last one, on worker threads while a batch
    #: encodes (the same bits either way)
    overlap: bool = True
    _crops: _LRU = field(default_factory=lambda: _LRU(8))
    _index: _LRU = field(default_factory=lambda: _LRU(INDEX_IMAGES, max_bytes=INDEX_BUDGET))
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
    def _crop_key(self, image: LoadedImage, params: GridParams) -> str:
        return f"{image.sha256[:24]}-{params.crop_key}"

    def _cached_crops(self, image: LoadedImage, params: GridParams) -> CropSet | None:
        """The image's crop embeddings from memory or disk, or ``None``."""
        key = self._crop_key(image, params)
        if key in self._crops:
            self._crops.move_to_end(key)
            return self._crops[key]
        path = self._crop_path(key)
        if path is not None and path.exists():
            z = np.load(path)
            cs = CropSet(z["boxes"], z["embeddings"], int(z["canvas_size"]), float(z["seconds"]), True)
            return self._crops.put(key, cs)
        return None

    def _crop_path(self, key: str):
        return cache_dir("crops", self.model.key) / f"{key}.npz" if self.disk_cache else None

    def _store_crops(self, key: str, cs: CropSet) -> None:
        path = self._crop_path(key)
        if path is not None:
            buf = io.BytesIO()
            np.savez(buf, boxes=cs.boxes, embeddings=cs.embeddings, canvas_size=cs.canvas_size, seconds=cs.seconds)
            atomic_write_bytes(path, buf.getvalue())
        self._crops.put(key, cs)

    def crops(self, image: LoadedImage, params: GridParams, progress: Progress | None = None) -> CropSet:
        """The grid crops' embeddings for an image (memory, then disk, then CLIP)."""
        cs = self._cached_crops(image, params)
        if cs is None:
            for _ in self._stream(image, params, progress, preview=False, rank=False):
                pass
            cs = self._cached_crops(image, params)
        return cs

    def _plan(self, image: LoadedImage, params: GridParams) -> tuple[Canvas, np.ndarray, list[np.ndarray], int]:
        """The canvas, the boxes, the encoding batches (the preview's boxes first) and how many
        boxes the preview has (0: no preview)."""
        canvas = Canvas.make(image.pixels, params.pad, params.seed)
        boxes = grid_boxes(canvas.size, params.box_sizes, params.stride,
                           pad=params.pad if params.prune else None, frame=image.pixels.shape[0])
        coarse = preview_mask(boxes, params.stride)
        n_coarse = int(coarse.sum())
        if not 0 < n_coarse < len(boxes):
            coarse[:], n_coarse = False, 0
        first, rest = np.flatnonzero(coarse), np.flatnonzero(~coarse)
        bs = self.batch_size
        batches = [part[i : i + bs] for part in (first, rest) for i in range(0, len(part), bs)]
        return canvas, boxes, batches, n_coarse

    def _batches_of_pixels(self, canvas: Canvas, boxes: np.ndarray, batches: list[np.ndarray]
                           ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """Each batch's crops cut and preprocessed, the next batch on a worker thread while the
        caller encodes this one."""
        def prepare(idx: np.ndarray) -> torch.Tensor:
            return self.model.preprocess_pil([canvas.crop(b) for b in boxes[idx]])

        if len(batches) == 1 or not self.overlap:
            for idx in batches:
                yield idx, prepare(idx)
            return
        with ThreadPoolExecutor(1, thread_name_prefix="convis-crops") as pool:
            nxt = pool.submit(prepare, batches[0]) if batches else None
            for i, idx in enumerate(batches):
                pixels = nxt.result()
                nxt = pool.submit(prepare, batches[i + 1]) if i + 1 < len(batches) else None
                yield idx, pixels

    def encode_boxes(self, canvas: Canvas, boxes: np.ndarray, progress: Progress | None = None) -> np.ndarray:
        """Embeddings of the boxes' crops through CLIP's own preprocessing, in batches."""
        batches = [np.arange(i, min(i + self.batch_size, len(boxes))) for i in range(0, len(boxes), self.batch_size)]
        out = []
        for idx, pixels in self._batches_of_pixels(canvas, boxes, batches):
            out.append(self.model.encode_images(pixels, batch_size=len(idx)).numpy())
            if progress is not None:
                progress(int(idx[-1]) + 1, len(boxes))
        return np.concatenate(out) if out else np.empty((0, self.model.embed_dim), dtype=np.float32)

    def _stream(self, image: LoadedImage, params: GridParams, progress: Progress | None, preview: bool,
                rank: bool = True) -> Iterator[RankIndex]:
        """Encode an image's crops (not cached yet) and, with ``rank``, count their ranks as
        batches arrive. Yields the partial index once the preview's crops are in (with
        ``preview``), stores crops and index, and yields the full index last."""
        t0 = time.perf_counter()
        canvas, boxes, batches, n_coarse = self._plan(image, params)
        text = torch.from_numpy(self.text_embeddings) if rank else None
        index = RankIndex.empty(text.shape[0], len(boxes)) if rank else None
        emb: np.ndarray | None = None
        done = 0
        with ThreadPoolExecutor(1, thread_name_prefix="convis-ranks") as ranker:
            pending: list[Future] = []
            for idx, pixels in self._batches_of_pixels(canvas, boxes, batches):
                e = self.model.encode_images(pixels, batch_size=len(idx)).numpy()
                if emb is None:
                    emb = np.empty((len(boxes), e.shape[1]), dtype=e.dtype)
                emb[idx] = e
                if rank and self.overlap:
                    pending.append(ranker.submit(lambda i=idx, x=e: index.add(i, similarities(text, x))))
                elif rank:
                    index.add(idx, similarities(text, e))
                done += len(idx)
                if progress is not None:
                    progress(done, len(boxes))
                if preview and rank and done == n_coarse:
                    for f in pending:
                        f.result()
                    yield index
            for f in pending:
                f.result()
        if emb is None:
            emb = np.empty((0, self.model.embed_dim), dtype=np.float32)
        key = self._crop_key(image, params)
        self._store_crops(key, CropSet(boxes, emb, canvas.size, time.perf_counter() - t0))
        if rank:
            yield self._index.put(f"{key}-{self.bank.key}", index)

    def rank_index(self, image: LoadedImage, params: GridParams, progress: Progress | None = None) -> RankIndex:
        """Every bank row's rank for every crop of the image, counted once per (image, bank)."""
        key = f"{self._crop_key(image, params)}-{self.bank.key}"
        if key in self._index:
            self._index.move_to_end(key)
            return self._index[key]
        cs = self._cached_crops(image, params)
        if cs is None:
            *_, index = self._stream(image, params, progress, preview=False)
            return index
        text = torch.from_numpy(self.text_embeddings)
        return self._index.put(key, RankIndex.build(torch.from_numpy(cs.embeddings), text, self.batch_size))

    # ------------------------------------------------------------------------------- maps
    def grid(self, image: LoadedImage, concept: str, params: GridParams | None = None,
             progress: Progress | None = None) -> SaliencyResult:
        """Algorithm 1 of the paper. See the module docstring."""
        *_, final = self.grid_progressive(image, concept, params, progress, preview=False)
        return final

    def grid_progressive(self, image: LoadedImage, concept: str, params: GridParams | None = None,
                         progress: Progress | None = None, preview: bool = True) -> Iterator[SaliencyResult]:
        """The grid map, first (for an image whose crops must be encoded, with ``preview``) from
        the boxes on the grid of twice the stride, then the full map; each result's ``meta``
        says which (``stage``: ``"coarse"`` or ``"final"``, with a ``stage_label``)."""
        params = params or GridParams()
        t0 = time.perf_counter()
        leaves = self.bank.leaves(concept)
        key = self._crop_key(image, params)
        had_crops = key in self._crops
        cold = f"{key}-{self.bank.key}" not in self._index and self._cached_crops(image, params) is None
        if cold:
            stream = self._stream(image, params, progress, preview=preview)
            for index in stream:
                if index.filled < len(index.columns):
                    yield self._grid_result(image, concept, params, leaves, index, t0, False, coarse=True)
        index = self.rank_index(image, params, progress)
        yield self._grid_result(image, concept, params, leaves, index, t0, had_crops and not cold)

    def _grid_result(self, image: LoadedImage, concept: str, params: GridParams, leaves: np.ndarray,
                     index: RankIndex, t0: float, had_crops: bool, coarse: bool = False) -> SaliencyResult:
        t1 = time.perf_counter()
        cs = self._cached_crops(image, params) if not coarse else None
        ranks = index.ranks(leaves)
        sel = index.columns[: index.filled] if coarse else np.arange(len(ranks))
        sel = np.sort(sel)
        boxes = (cs.boxes if cs is not None else self._plan(image, params)[1])[sel]
        ranks = ranks[sel]
        scores = gamma_score(ranks) if params.scoring == "gamma" else ranks
        size = image.pixels.shape[0] + 2 * params.pad
        acc = accumulate(boxes, scores, size)
        n, p = image.pixels.shape[0], params.pad
        m = normalise(acc[p : p + n, p : p + n])
        if params.scoring == "rank" and m.max() > 0:
            m = (1.0 - m).astype(np.float32)
        t2 = time.perf_counter()
        timings = {"prepare_s": t1 - t0, "map_s": t2 - t1, "total_s": t2 - t0,
                   "crops_cached": bool(had_crops or (cs is not None and cs.from_cache)),
                   "crop_encoding_s": cs.seconds if cs is not None else t1 - t0}
        if coarse:
            label = (f"Preview from {len(boxes)} of {len(index.columns)} boxes (every {2 * params.stride} px "
                     f"instead of {params.stride}); the full map follows")
        else:
            label = f"Full map: {len(boxes)} boxes every {params.stride} px"
        res = self._result("convis_grid", image, concept, asdict(params), m, timings, params.seed,
                           extras={"boxes": boxes, "ranks": ranks, "leaves": leaves}, crops=len(boxes))
        res.meta.update(stage="coarse" if coarse else "final", stage_label=label)
        return res

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
