"""What CLIP sees: the concepts that rank best for an image or a region of it, and the
similarity of an image with named concepts (ground truth for studies)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .bank import bank_embeddings, get_bank
from .errors import ConvisError
from .images import ImageInput, LoadedImage, load_image
from .models import ClipModel
from .wordnet import nouns


@dataclass(frozen=True)
class ConceptHit:
    """One concept CLIP matches: ``rank`` 0 is the best row of the whole bank."""

    synset: str
    label: str
    definition: str
    similarity: float
    rank: int


def _region_pixels(img: LoadedImage, region: tuple[float, float, float, float] | None) -> Image.Image:
    """The frame, or a region of the original image given as fractions ``(x0, y0, x1, y1)``."""
    if region is None:
        return Image.fromarray(img.pixels)
    x0, y0, x1, y1 = (float(v) for v in region)
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise ConvisError("a region is (x0, y0, x1, y1) as fractions of the image with x0 < x1 and y0 < y1")
    w, h = img.original.size
    box = (round(x0 * w), round(y0 * h), max(round(x1 * w), round(x0 * w) + 1), max(round(y1 * h), round(y0 * h) + 1))
    return img.original.crop(box)


def image_embedding(model: ClipModel, image: ImageInput | LoadedImage,
                    region: tuple[float, float, float, float] | None = None) -> torch.Tensor:
    """CLIP embedding of the centre-cropped frame (or of a region), L2-normalised, ``(d,)``."""
    img = image if isinstance(image, LoadedImage) else load_image(image)
    return model.encode_images(model.preprocess_pil([_region_pixels(img, region)]))[0]


def top_concepts(model: ClipModel, image: ImageInput | LoadedImage, k: int = 10, bank: str = "all",
                 text_mode: str = "definitions",
                 region: tuple[float, float, float, float] | None = None) -> list[ConceptHit]:
    """The ``k`` synsets whose bank rows match the image (or region) best, best first."""
    b = get_bank(bank, text_mode)
    text = torch.from_numpy(bank_embeddings(model, b))
    e = image_embedding(model, image, region).to(text.dtype)
    sims = (text @ e).numpy()
    order = np.argsort(-sims, kind="stable")
    g = nouns()
    hits: list[ConceptHit] = []
    seen: set[int] = set()
    for pos, row in enumerate(order):
        syn = int(b.row_synset[row])
        if syn in seen:
            continue
        seen.add(syn)
        rank = int((sims > sims[row]).sum())
        s = g.synset(g.names[syn])
        hits.append(ConceptHit(s.name, s.label, s.definition, float(sims[row]), rank))
        if len(hits) >= k or pos > 50 * k:
            break
    return hits


def concept_scores(model: ClipModel, image: ImageInput | LoadedImage, concepts: list[str],
                   prompt: str | None = None) -> dict[str, float]:
    """Cosine similarity of the image's frame with each concept's definition (or ``prompt``
    filled with ``{lemma}``/``{definition}``)."""
    g = nouns()
    syns = [g.synset(c) for c in concepts]
    texts = [prompt.format(lemma=s.label, definition=s.definition) if prompt else s.definition for s in syns]
    t = model.encode_texts(texts)
    e = image_embedding(model, image).to(t.dtype)
    return {s.name: float(v) for s, v in zip(syns, (t @ e).tolist(), strict=True)}
