"""Train the bundled ``shapes-world`` open_clip CLIP on Shapes-world scenes, on the CPU.

Each step renders ``scenes_per_step`` training scenes (``splits.TRAIN`` ids) and shows the
model several views of each, the way ConVis will: the whole scene, and boxes of 128 and 64 px on
ConVis's 16-px grid over the scene padded with uniform noise to 480 px (boxes holding one object,
several, part of one, or only background and noise). Texts are WordNet: the definition and lemmas
of every Shapes-world concept, of ``background.n.02`` for views without objects, and a fresh sample
of other noun definitions and lemmas (random ones plus lexically close "hard" ones) as negatives.

Against collapse of the text tower (an earlier attempt's class definitions reached cosine 0.98),
the loss pins both towers to fixed points (``anchor_loss``, weight 1 by default):
- 16 fixed orthonormal anchors, one per concept and one for the background. Every view is pulled
  to the anchors of its fully visible objects (background anchor for views without objects;
  half-visible objects masked out); every class definition and lemma to its concept's anchor; and
  every sampled WordNet negative is kept below cosine ``neg_margin`` with every anchor. The class
  texts cannot collapse (their targets are orthogonal) and the image tower learns like a classifier.
- On top, the contrastive loss in both directions: image->text (one term per visible object, its
  definition alone and its lemmas as a multiple-instance positive, other present or half-visible
  objects left out of the denominator) and text->image (each class text against all views). WordNet
  ancestors and descendants of the concepts are never negatives. Learnable, clamped logit scale.
- The class definitions' mean cosine is logged as it trains (``def_cos`` in the curve).

The image tower is ``convis_small_cnn`` (``convis_core/towers.py``), a VGG-style CNN at 64 px:
open_clip's ModifiedResNet (width 8 and 16), timm's small ResNet and a ViT/8 all learned several
times more slowly here (held-out single-object accuracy 11-21 % after two minutes, against 42 %).

``python -m convis_core.shapes.train --weights convis_core/shapes/weights/shapes-world.safetensors``
reproduces the shipped weights' recipe (the defaults; seeded, so the same torch build and thread
count give the same numbers).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from ..models import register_configs, trimmed_text_forward
from . import hierarchy as wnh
from .scenes import ALL_CONCEPTS, BACKGROUND_SYNSET, IMAGE_SIZE, Scene, render_scene
from .splits import TRAIN, VALIDATION

MODEL_NAME = "shapes-world"
WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "shapes-world.safetensors"
PAD = 128
CANVAS = IMAGE_SIZE + 2 * PAD
MEAN = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
FULL_VIS, ABSENT_VIS = 0.7, 0.1


@dataclass
class TrainConfig:
    """Everything that determines a training run."""

    seed: int = 0
    steps: int = 2000
    scenes_per_step: int = 24
    crops_per_scene: int = 3
    random_negatives: int = 160
    random_lemma_negatives: int = 64
    hard_negatives: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: int = 100
    init_logit_scale: float = 10.0
    anchor_weight: float = 1.0
    anchor_scale: float = 20.0
    neg_margin: float = 0.2
    max_logit_scale: float = 100.0
    num_workers: int = 1
    threads: int = 2
    eval_every: int = 250
    model_name: str = MODEL_NAME
    max_minutes: float = 0.0  # 0: no limit; otherwise stop early (the report says so)


# ------------------------------------------------------------------------------------- model
def register_config() -> None:
    """Make ``shapes-world`` (and the project's other configs and towers) known to open_clip."""
    register_configs()


def create_model(seed: int = 0, name: str = MODEL_NAME) -> torch.nn.Module:
    """A freshly initialised ``shapes-world`` CLIP (seeded)."""
    register_config()
    torch.manual_seed(seed)
    return open_clip.create_model(name, pretrained=None)


def model_image_size(model: torch.nn.Module) -> int:
    size = model.visual.image_size
    return int(size[0] if isinstance(size, tuple | list) else size)


def encode_text_trimmed(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Normalised text embeddings through the engine's length-trimmed forward (exact, with grads)."""
    return F.normalize(trimmed_text_forward(model, tokens), dim=-1)


def to_pixels(images: Sequence[Image.Image], size: int) -> torch.Tensor:
    """open_clip's eval preprocessing (bicubic resize of the short side, centre crop, normalise)."""
    arrs = []
    for im in images:
        w, h = im.size
        if w != h:
            s = min(w, h)
            left, top = (w - s) // 2, (h - s) // 2
            im = im.crop((left, top, left + s, top + s))
        arrs.append(np.asarray(im.resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8))
    x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float() / 255.0
    return (x - MEAN) / STD


# --------------------------------------------------------------------------------------- texts
@dataclass
class TextBank:
    """Class texts (positives), background texts and the pools negatives are drawn from."""

    class_defs: list[str]
    class_lemmas: list[list[str]]
    bg_def: str
    bg_lemmas: list[str]
    neg_defs: list[str]
    neg_lemmas: list[str]
    hard_defs: list[str]


@lru_cache(maxsize=1)
def build_text_bank(hard_per_class: int = 80) -> TextBank:
    """WordNet texts for training; negatives exclude the concepts' ancestors and subtrees."""
    wn = wnh.wordnet()
    targets = list(ALL_CONCEPTS) + [BACKGROUND_SYNSET]
    excluded: set[str] = set()
    for c in targets:
        excluded |= wnh.subtree(c) | wnh.ancestors(c)
    class_defs = [wnh.definition(c) for c in ALL_CONCEPTS]
    class_lemmas = [wnh.lemma_texts(c) for c in ALL_CONCEPTS]
    positive_strings = {t.lower() for t in class_defs} | {t.lower() for ls in class_lemmas for t in ls}
    positive_strings |= {wnh.definition(BACKGROUND_SYNSET).lower()}
    positive_strings |= {t.lower() for t in wnh.lemma_texts(BACKGROUND_SYNSET)}
    neg_defs: list[str] = []
    neg_lemmas: set[str] = set()
    for s in wn.all_synsets("n"):
        if s.name() in excluded:
            continue
        d = s.definition()
        if d.lower() not in positive_strings:
            neg_defs.append(d)
        for lemma in s.lemmas():
            t = lemma.name().replace("_", " ")
            if t.lower() not in positive_strings:
                neg_lemmas.add(t)
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(stop_words="english", sublinear_tf=True)
    m = vec.fit_transform(neg_defs)
    q = vec.transform([*class_defs, wnh.definition(BACKGROUND_SYNSET), *[" ".join(ls) for ls in class_lemmas]])
    sims = (q @ m.T).toarray()
    hard: list[str] = []
    seen: set[str] = set()
    for row in sims:
        for j in np.argsort(-row)[:hard_per_class]:
            if neg_defs[j] not in seen:
                seen.add(neg_defs[j])
                hard.append(neg_defs[j])
    return TextBank(
        class_defs=class_defs,
        class_lemmas=class_lemmas,
        bg_def=wnh.definition(BACKGROUND_SYNSET),
        bg_lemmas=wnh.lemma_texts(BACKGROUND_SYNSET),
        neg_defs=neg_defs,
        neg_lemmas=sorted(neg_lemmas),
        hard_defs=hard,
    )


# --------------------------------------------------------------------------------------- views
def padded_canvas(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """The scene pasted at (128, 128) on a 480x480 canvas of uniform RGB noise (ConVis padding)."""
    canvas = rng.integers(0, 255, size=(CANVAS, CANVAS, 3), dtype=np.uint8)
    canvas[PAD : PAD + IMAGE_SIZE, PAD : PAD + IMAGE_SIZE] = np.asarray(scene.image)
    return canvas


def grid_box(scene: Scene, rng: np.random.Generator, focus: bool) -> tuple[int, int, int]:
    """A ConVis grid box ``(x, y, size)`` (size 128 or 64, corner on the 16-px grid) that overlaps
    the image; with ``focus`` it contains the centre of a random object."""
    s = 128 if rng.random() < 0.5 else 64
    lo, hi = max(0, PAD - s + 1), PAD + IMAGE_SIZE - 1
    if focus and scene.objects:
        o = scene.objects[int(rng.integers(len(scene.objects)))]
        cx, cy = PAD + (o.box[0] + o.box[2]) / 2, PAD + (o.box[1] + o.box[3]) / 2
        lo_x, lo_y = max(lo, int(cx) - s + 1), max(lo, int(cy) - s + 1)
        xs = [x for x in range(0, CANVAS, 16) if lo_x <= x <= min(hi, cx)]
        ys = [y for y in range(0, CANVAS, 16) if lo_y <= y <= min(hi, cy)]
        if xs and ys:
            return int(rng.choice(xs)), int(rng.choice(ys)), s
    xs = [x for x in range(0, CANVAS, 16) if lo <= x <= hi]
    return int(rng.choice(xs)), int(rng.choice(xs)), s


def visibility(scene: Scene, x: int, y: int, s: int) -> np.ndarray:
    """Fraction of each object's mask inside the canvas box ``(x, y, s)``."""
    x0, y0 = max(x - PAD, 0), max(y - PAD, 0)
    x1, y1 = min(x + s - PAD, IMAGE_SIZE), min(y + s - PAD, IMAGE_SIZE)
    tot = scene.masks.sum(axis=(1, 2))
    if x1 <= x0 or y1 <= y0:
        return np.zeros(len(scene.objects))
    return scene.masks[:, y0:y1, x0:x1].sum(axis=(1, 2)) / np.maximum(tot, 1e-6)


class StepData(torch.utils.data.Dataset):
    """Batch number ``step`` of a run: views, their concept visibility and the sampled texts.

    Deterministic in (seed, step), whatever the number of loader workers.
    """

    def __init__(self, cfg: TrainConfig, bank: TextBank, image_size: int, tokenizer) -> None:  # noqa: ANN001
        self.cfg, self.bank, self.size, self.tok = cfg, bank, image_size, tokenizer

    def __len__(self) -> int:
        return self.cfg.steps

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        cfg, bank = self.cfg, self.bank
        rng = np.random.default_rng([cfg.seed, step, 77])
        base = cfg.seed * 7_919 + step * cfg.scenes_per_step
        views: list[Image.Image] = []
        vis_rows: list[np.ndarray] = []
        k = len(ALL_CONCEPTS)
        for i in range(cfg.scenes_per_step):
            scene = render_scene((base + i) % TRAIN.stop)
            idx = [ALL_CONCEPTS.index(c) for c in scene.synsets]
            row = np.zeros(k)
            row[idx] = 1.0
            views.append(scene.image)
            vis_rows.append(row)
            canvas = padded_canvas(scene, rng)
            for j in range(cfg.crops_per_scene):
                x, y, s = grid_box(scene, rng, focus=j == 0 or rng.random() < 0.3)
                crop = Image.fromarray(canvas[y : y + s, x : x + s])
                row = np.zeros(k)
                np.maximum.at(row, idx, visibility(scene, x, y, s))
                views.append(crop)
                vis_rows.append(row)
        defs = [bank.neg_defs[j] for j in rng.choice(len(bank.neg_defs), cfg.random_negatives, replace=False)]
        defs += [bank.hard_defs[j] for j in rng.choice(len(bank.hard_defs), cfg.hard_negatives, replace=False)]
        lemmas = [bank.neg_lemmas[j] for j in rng.choice(len(bank.neg_lemmas), cfg.random_lemma_negatives, replace=False)]
        return {
            "pixels": to_pixels(views, self.size),
            "vis": torch.tensor(np.stack(vis_rows), dtype=torch.float32),
            "neg_def_tokens": self.tok(defs),
            "neg_lemma_tokens": self.tok(lemmas),
        }


# ---------------------------------------------------------------------------------------- loss
@dataclass
class ClassTokens:
    """Tokenised class texts: definitions, flattened lemmas with their owner index, background."""

    defs: torch.Tensor
    lemmas: torch.Tensor
    lemma_owner: torch.Tensor
    bg: torch.Tensor  # background definition + lemmas; row 0 is the definition


def class_tokens(bank: TextBank, tokenizer) -> ClassTokens:  # noqa: ANN001
    lemmas = [t for ls in bank.class_lemmas for t in ls]
    owner = [i for i, ls in enumerate(bank.class_lemmas) for _ in ls]
    return ClassTokens(
        defs=tokenizer(bank.class_defs),
        lemmas=tokenizer(lemmas),
        lemma_owner=torch.tensor(owner),
        bg=tokenizer([bank.bg_def, *bank.bg_lemmas]),
    )


def _mil_nce(logits: torch.Tensor, pos: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """-log( sum_pos exp / sum_allowed exp ) per row; rows of ``pos`` must hold a positive."""
    neg_inf = torch.finfo(logits.dtype).min
    num = torch.logsumexp(logits.masked_fill(~pos, neg_inf), dim=1)
    den = torch.logsumexp(logits.masked_fill(~(allowed | pos), neg_inf), dim=1)
    return den - num


def contrastive_loss(
    img: torch.Tensor,
    ct_emb: dict[str, torch.Tensor],
    ct: ClassTokens,
    vis: torch.Tensor,
    scale: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Both-direction multi-positive contrastive loss (see module docstring).

    ``ct_emb`` holds normalised embeddings ``defs`` (K), ``lemmas`` (L), ``bg`` (B) and ``neg`` (N).
    ``vis`` is the (views, K) visibility of each concept in each view.
    """
    k = ct_emb["defs"].shape[0]
    n_lem, n_bg, n_neg = ct_emb["lemmas"].shape[0], ct_emb["bg"].shape[0], ct_emb["neg"].shape[0]
    texts = torch.cat([ct_emb["defs"], ct_emb["lemmas"], ct_emb["bg"], ct_emb["neg"]])
    logits = scale * img @ texts.T  # (V, T)
    v = img.shape[0]
    owner = torch.cat([torch.arange(k), ct.lemma_owner])  # class index of the first K+L texts
    full = vis >= FULL_VIS
    present = vis > ABSENT_VIS  # full or partial
    background_view = ~present.any(dim=1)
    # texts a view may be compared against: absent classes, negatives, background unless objects
    cls_allowed = ~present[:, owner]  # (V, K+L)
    bg_allowed = background_view[:, None].expand(v, n_bg) | present.any(dim=1, keepdim=True).expand(v, n_bg)
    base_allowed = torch.cat([cls_allowed, bg_allowed, torch.ones(v, n_neg, dtype=torch.bool)], dim=1)
    # image -> text: one definition term and one lemma term per fully visible object
    rows, cols = torch.nonzero(full, as_tuple=True)
    terms = []
    if len(rows):
        lg = logits[rows]
        allowed = base_allowed[rows]
        pos_def = torch.zeros_like(allowed)
        pos_def[torch.arange(len(rows)), cols] = True
        pos_lem = torch.zeros_like(allowed)
        pos_lem[:, k : k + n_lem] = ct.lemma_owner[None, :] == cols[:, None]
        terms += [_mil_nce(lg, pos_def, allowed), _mil_nce(lg, pos_lem, allowed)]
    bg_rows = torch.nonzero(background_view, as_tuple=True)[0]
    if len(bg_rows):
        lg = logits[bg_rows]
        allowed = base_allowed[bg_rows]
        pos_def = torch.zeros_like(allowed)
        pos_def[:, k + n_lem] = True
        pos_lem = torch.zeros_like(allowed)
        pos_lem[:, k + n_lem + 1 : k + n_lem + n_bg] = True
        terms += [_mil_nce(lg, pos_def, allowed), _mil_nce(lg, pos_lem, allowed)]
    i2t = torch.cat(terms).mean()
    # text -> image: each class text (and the background definition) against all views
    t_logits = logits[:, : k + n_lem + 1].T  # (K+L+1, V)
    t_full = torch.cat([full[:, owner], background_view[:, None]], dim=1).T
    t_ignore = torch.cat([(present & ~full)[:, owner], torch.zeros(v, 1, dtype=torch.bool)], dim=1).T
    neg = ~t_full & ~t_ignore
    neg_lse = torch.logsumexp(t_logits.masked_fill(~neg, torch.finfo(logits.dtype).min), dim=1, keepdim=True)
    per_pair = torch.logaddexp(t_logits, neg_lse) - t_logits  # -log softmax over {pos} + negs
    t2i = per_pair[t_full].mean() if t_full.any() else logits.new_zeros(())
    loss = i2t + t2i
    with torch.no_grad():
        one = (vis >= FULL_VIS).sum(dim=1) == 1
        acc = float("nan")
        if one.any():
            pred = logits[one, :k].argmax(dim=1)
            acc = float((full[one].float().argmax(dim=1) == pred).float().mean())
    return loss, {"i2t": float(i2t.detach()), "t2i": float(t2i.detach()), "view_acc": acc}


def prototypes(k: int, dim: int, seed: int) -> torch.Tensor:
    """``k`` fixed orthonormal anchor directions (one per concept, plus background), seeded."""
    g = torch.Generator().manual_seed(seed + 12345)
    q, _ = torch.linalg.qr(torch.randn(dim, k, generator=g))
    return q.T.contiguous()


def anchor_loss(
    img: torch.Tensor, ct_emb: dict[str, torch.Tensor], ct: ClassTokens, vis: torch.Tensor,
    protos: torch.Tensor, scale: float, neg_margin: float = 0.2,
) -> torch.Tensor:
    """Pin images and class texts to fixed orthonormal anchors (one per concept + background).

    Images: cross-entropy against the anchors with a soft target spread over the fully visible
    objects (background anchor for views without objects; half-visible objects masked out).
    Texts: each class definition and lemma to its concept's anchor, background texts to theirs.
    With both towers pulled to the same orthonormal points from the first step, the class texts
    cannot collapse and the image tower learns as fast as a classifier; the contrastive loss
    keeps the rest of WordNet away from them.
    """
    k = vis.shape[1]
    full, present = vis >= FULL_VIS, vis > ABSENT_VIS
    bgv = ~present.any(dim=1, keepdim=True)
    target = torch.cat([full, bgv], dim=1).float()
    ignore = torch.cat([present & ~full, torch.zeros_like(bgv)], dim=1)
    rows = target.sum(dim=1) > 0
    logits = (scale * img @ protos.T).masked_fill(ignore, torch.finfo(img.dtype).min)
    tgt = target[rows] / target[rows].sum(dim=1, keepdim=True)
    l_img = -(tgt * F.log_softmax(logits[rows], dim=1)).sum(dim=1).mean()
    texts = torch.cat([ct_emb["defs"], ct_emb["lemmas"], ct_emb["bg"]])
    owner = torch.cat([torch.arange(k), ct.lemma_owner, torch.full((len(ct_emb["bg"]),), k)])
    l_txt = F.cross_entropy(scale * texts @ protos.T, owner)
    # the rest of WordNet stays off every anchor (cosine below ``neg_margin``)
    l_neg = F.softplus(scale * (ct_emb["neg"] @ protos.T - neg_margin)).mean()
    return l_img + l_txt + l_neg


def embed_step_texts(
    model: torch.nn.Module, ct: ClassTokens, neg_defs: torch.Tensor, neg_lemmas: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Embed a step's texts in two length groups (definitions, short lemma texts)."""
    k, n_lem, n_bg = len(ct.defs), len(ct.lemmas), len(ct.bg)
    long = encode_text_trimmed(model, torch.cat([ct.defs, ct.bg[:1], neg_defs]))
    short = encode_text_trimmed(model, torch.cat([ct.lemmas, ct.bg[1:], neg_lemmas]))
    return {
        "defs": long[:k],
        "lemmas": short[:n_lem],
        "bg": torch.cat([long[k : k + 1], short[n_lem : n_lem + n_bg - 1]]),
        "neg": torch.cat([long[k + 1 :], short[n_lem + n_bg - 1 :]]),
    }


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.ndim < 2 or "embedding" in name or "logit_scale" in name or "bn" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def class_def_cosine(model: torch.nn.Module, ct: ClassTokens) -> float:
    """Mean off-diagonal cosine between the class definitions' embeddings (collapse monitor)."""
    with torch.no_grad():
        e = encode_text_trimmed(model, ct.defs)
        c = e @ e.T
        k = c.shape[0]
        return float((c.sum() - c.diagonal().sum()) / (k * (k - 1)))


# ------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def zero_shot_accuracy(
    model: torch.nn.Module, ct: ClassTokens, n: int = 300, start: int = VALIDATION.start, mode: str = "definitions"
) -> float:
    """15-way accuracy over the world's concepts on ``n`` single-object scenes from ``start``
    (default: the validation range, the only held-out scenes training and tuning may look at)."""
    model.eval()
    size = model_image_size(model)
    correct = 0
    for b in range(0, n, 100):
        scenes = [render_scene(start + i, n_objects=1) for i in range(b, min(n, b + 100))]
        img = F.normalize(model.encode_image(to_pixels([s.image for s in scenes], size)), dim=-1)
        if mode == "definitions":
            scores = img @ encode_text_trimmed(model, ct.defs).T
        else:
            sims = img @ encode_text_trimmed(model, ct.lemmas).T
            scores = torch.full((len(scenes), len(ALL_CONCEPTS)), -2.0)
            scores = scores.scatter_reduce(1, ct.lemma_owner.expand(len(scenes), -1), sims, "amax")
        truth = torch.tensor([ALL_CONCEPTS.index(s.synsets[0]) for s in scenes])
        correct += int((scores.argmax(dim=1) == truth).sum())
    return correct / n


def save_weights(model: torch.nn.Module, path: Path, meta: dict[str, str]) -> None:
    """fp16 safetensors of the state dict (integer buffers kept as they are)."""
    from safetensors.torch import save_file

    sd = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path), metadata=meta)


def plot_curve(rows: list[dict], path: Path) -> None:
    """Loss and accuracy against step (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    steps = [r["step"] for r in rows]
    ax[0].plot(steps, [r["loss"] for r in rows], label="loss (smoothed)")
    ax[0].set_xlabel("step")
    ax[0].legend()
    ev = [r for r in rows if r.get("zero_shot") not in (None, "")]
    acc = [r for r in rows if r["view_acc"] != ""]
    ax[1].plot([r["step"] for r in acc], [r["view_acc"] for r in acc], alpha=0.5, label="train view acc (smoothed)")
    ax[1].plot([r["step"] for r in ev], [r["zero_shot"] for r in ev], "o-", label="validation 15-way accuracy")
    ax[1].plot([r["step"] for r in ev], [r["def_cos"] for r in ev], "s--", label="class-def mean cosine")
    ax[1].set_ylim(-0.2, 1.02)
    ax[1].set_xlabel("step")
    ax[1].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def train(cfg: TrainConfig, out_dir: Path, weights_path: Path | None = None, progress: bool = True) -> dict:
    """Train from scratch; writes weights, ``train_curve.csv/png`` and ``train_report.json``."""
    torch.set_num_threads(cfg.threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    model = create_model(cfg.seed, cfg.model_name)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(cfg.init_logit_scale))
    tokenizer = open_clip.get_tokenizer(cfg.model_name)
    bank = build_text_bank()
    ct = class_tokens(bank, tokenizer)
    data = StepData(cfg, bank, model_image_size(model), tokenizer)
    loader = torch.utils.data.DataLoader(
        data, batch_size=None, shuffle=False, num_workers=cfg.num_workers,
        prefetch_factor=2 if cfg.num_workers else None, persistent_workers=False,
    )
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)

    def lr_at(step: int) -> float:
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))

    protos = prototypes(len(ALL_CONCEPTS) + 1, int(model.text_projection.shape[1]), cfg.seed)
    rows: list[dict] = []
    ema: dict[str, float] = {}
    bar = tqdm(loader, total=cfg.steps, disable=not progress, desc="shapes-world", dynamic_ncols=True)
    stopped_early = False
    curve_keys = ("loss", "i2t", "t2i", "view_acc", *(("anchor",) if cfg.anchor_weight else ()))
    for step, batch in enumerate(bar):
        if cfg.max_minutes and time.time() - t_start > cfg.max_minutes * 60:
            stopped_early = True
            break
        model.train()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        img = F.normalize(model.encode_image(batch["pixels"]), dim=-1)
        emb = embed_step_texts(model, ct, batch["neg_def_tokens"], batch["neg_lemma_tokens"])
        loss, stats = contrastive_loss(img, emb, ct, batch["vis"], model.logit_scale.exp())
        if cfg.anchor_weight:
            anchor = anchor_loss(img, emb, ct, batch["vis"], protos, cfg.anchor_scale, cfg.neg_margin)
            stats["anchor"] = float(anchor.detach())
            loss = loss + cfg.anchor_weight * anchor
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(cfg.max_logit_scale))
        for key, val in [("loss", float(loss.detach())), *stats.items()]:
            if not math.isnan(val):
                ema[key] = val if key not in ema else 0.95 * ema[key] + 0.05 * val
        # every row has every column: a stat not seen yet (no single-object view so far) is blank
        row = {"step": step + 1, "time_s": round(time.time() - t_start, 1),
               **{k: round(ema[k], 4) if k in ema else "" for k in curve_keys},
               "logit_scale": round(float(model.logit_scale.detach().exp()), 2), "zero_shot": "", "def_cos": ""}
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            row["zero_shot"] = zero_shot_accuracy(model, ct, n=100)
            row["def_cos"] = round(class_def_cosine(model, ct), 4)
        rows.append(row)
        bar.set_postfix(loss=f"{ema['loss']:.3f}", acc=f"{ema.get('view_acc', 0):.2f}", zs=row["zero_shot"] or "-")
    train_s = time.time() - t_start
    model.eval()
    report = {
        "config": asdict(cfg),
        "train_seconds": round(train_s, 1),
        "steps_done": len(rows),
        "stopped_early": stopped_early,
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "validation_zero_shot_definitions_300": zero_shot_accuracy(model, ct, n=300),
        "validation_zero_shot_lemmas_300": zero_shot_accuracy(model, ct, n=300, mode="lemmas"),
        "class_definition_mean_cosine": class_def_cosine(model, ct),
        "logit_scale": float(model.logit_scale.detach().exp()),
    }
    with open(out_dir / "train_curve.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[-1].keys()))
        w.writeheader()
        w.writerows(rows)
    plot_curve(rows, out_dir / "train_curve.png")
    (out_dir / "train_report.json").write_text(json.dumps(report, indent=2))
    if weights_path is not None:
        save_weights(model, weights_path, {"name": MODEL_NAME, "seed": str(cfg.seed), "steps": str(cfg.steps),
                                           "note": "toy model trained on synthetic Shapes-world scenes"})
        report["weights"] = str(weights_path)
        report["weights_bytes"] = weights_path.stat().st_size
    return report


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Train the Shapes-world toy CLIP on the CPU.")
    p.add_argument("--out", type=Path, default=Path(".data/shapes/train"), help="folder for curve and report")
    p.add_argument("--weights", type=Path, default=None, help=f"where to write the weights (e.g. {WEIGHTS_PATH})")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--config-dir", type=Path, default=None, help="extra open_clip model configs (experiments)")
    for f, default in asdict(TrainConfig()).items():
        p.add_argument(f"--{f.replace('_', '-')}", type=type(default), default=default)
    a = p.parse_args(argv)
    cfg = TrainConfig(**{f: getattr(a, f) for f in asdict(TrainConfig())})
    if a.config_dir is not None:
        open_clip.add_model_config(a.config_dir)
    report = train(cfg, a.out, a.weights, progress=not a.no_progress)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
