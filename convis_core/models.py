"""CLIP models by name: open_clip architectures with pretrained tags, local checkpoints or random weights.

``load_model(name, pretrained)`` is the only way the engine gets a model. ``pretrained`` is
``"none"`` (explicitly random, seeded), an open_clip pretrained tag (``"openai"``), a path to a
local checkpoint (``.pt``/``.bin``/``.safetensors``), or ``"bundled"`` for models that ship with
the project (the Shapes-world toy model). A tag that cannot be found locally and cannot be
fetched fails at once with a message that says how to supply the weights.

:func:`default_pretrained` is the one answer to "which weights does a bare model name mean".
torch and open_clip are imported when a model is loaded, not with this module, so that the
command line can answer ``--help`` and name defaults at once.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import UnsupportedModelError, WeightsUnavailableError
from .paths import PACKAGE_DIR

if TYPE_CHECKING:
    import torch
    from PIL import Image

log = logging.getLogger(__name__)

CONFIG_DIR = PACKAGE_DIR / "model_configs"
#: Models whose weights ship with the project: name -> checkpoint path.
BUNDLED_WEIGHTS: dict[str, Path] = {
    "shapes-world": PACKAGE_DIR / "shapes" / "weights" / "shapes-world.safetensors",
}
DEFAULT_REAL = ("ViT-B-32-quickgelu", "openai")
DEFAULT_DEMO = ("shapes-world", "bundled")

_registered = False


def register_configs() -> None:
    """Register the project's own architectures (``model_configs/*.json``) with open_clip, and
    their image towers (``towers.py``) with timm."""
    global _registered
    if not _registered:
        import open_clip

        from . import towers  # noqa: F401  (registers the towers with timm)

        open_clip.add_model_config(CONFIG_DIR)
        _registered = True


def list_architectures() -> list[str]:
    """Every architecture name open_clip knows, ours included."""
    import open_clip

    register_configs()
    return sorted(open_clip.list_models())


def default_device() -> torch.device:
    """CUDA when present, CPU otherwise."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class ClipModel:
    """An open_clip CLIP model with its preprocessing, tokenizer and identity.

    ``identity`` names the weights exactly (architecture, source, content hash of a checkpoint,
    random seed) and keys every cache, so that two models never share cached embeddings.
    """

    model: torch.nn.Module
    preprocess: Any
    tokenizer: Any
    name: str
    pretrained: str
    weights_id: str
    random_weights: bool
    device: torch.device
    image_size: int
    meta: dict[str, Any] = field(default_factory=dict)
    #: Held while a method runs: some methods (Grad-CAM, attention relevance) change the model's
    #: hooks or gradient flags for the duration, and the app shares one model between sessions.
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @property
    def key(self) -> str:
        """Short filesystem-safe key for caches."""
        raw = f"{self.name}|{self.weights_id}|{self.dtype}"
        return f"{self.name}-{hashlib.sha256(raw.encode()).hexdigest()[:12]}"

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def identity(self) -> dict[str, Any]:
        """JSON-able description carried in every result's metadata."""
        return {
            "model": self.name,
            "pretrained": self.pretrained,
            "weights_id": self.weights_id,
            "random_weights": self.random_weights,
            "device": str(self.device),
        }

    def to(self, dtype: torch.dtype) -> ClipModel:
        """The same model in another floating-point precision (e.g. float64 for exactness tests)."""
        self.model = self.model.to(dtype)
        return self

    # ----------------------------------------------------------------------------------- images
    def preprocess_pil(self, images: list[Image.Image]) -> torch.Tensor:
        """CLIP's own preprocessing (resize short side, centre crop, normalise) of PIL images."""
        import torch

        return torch.stack([self.preprocess(im) for im in images])

    def encode_images(self, pixels: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """L2-normalised image embeddings, ``(n, d)`` float, on the CPU."""
        import torch
        import torch.nn.functional as F

        out = []
        with torch.no_grad():
            for i in range(0, len(pixels), batch_size):
                x = pixels[i : i + batch_size].to(self.device, self.dtype)
                out.append(F.normalize(self.model.encode_image(x), dim=-1).cpu())
        return torch.cat(out) if out else torch.empty(0, self.embed_dim)

    @property
    def embed_dim(self) -> int:
        import torch

        proj = getattr(self.model, "text_projection", None)
        if isinstance(proj, torch.Tensor):
            return int(proj.shape[1])
        return int(self.model.encode_text(self.tokenizer(["a"]).to(self.device)).shape[-1])

    # ------------------------------------------------------------------------------------ texts
    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(texts)

    def encode_tokens(self, tokens: torch.Tensor, trim: bool = True) -> torch.Tensor:
        """L2-normalised text embeddings of a token batch ``(n, ctx)``.

        With ``trim`` the batch is cut to its longest real sequence: the text tower is causal and
        pools at the end-of-text token, so positions after it never influence the result and the
        embeddings equal the padded ones (tested), at a fraction of the cost.
        """
        import torch
        import torch.nn.functional as F

        tokens = tokens.to(self.device)
        m = self.model
        with torch.no_grad():
            x = trimmed_text_forward(m, tokens) if trim and _can_trim(m) else m.encode_text(tokens)
        return F.normalize(x.float() if x.dtype == torch.float16 else x, dim=-1).cpu()

    def encode_texts(
        self, texts: list[str], batch_size: int = 256, trim: bool = True, progress: Any = None
    ) -> torch.Tensor:
        """Embeddings of ``texts`` in their given order; batches are formed by token length.

        ``progress`` is called as ``progress(done, total)`` after each batch.
        """
        import torch

        if not texts:
            return torch.empty(0, self.embed_dim)
        tokens = self.tokenize(list(texts))
        lengths = (tokens != 0).sum(dim=1).numpy()
        order = np.argsort(lengths, kind="stable")
        out = torch.empty(len(texts), self.embed_dim, dtype=self.dtype if self.dtype == torch.float64 else torch.float32)
        for i in range(0, len(order), batch_size):
            idx = torch.from_numpy(order[i : i + batch_size])
            out[idx] = self.encode_tokens(tokens[idx], trim=trim).to(out.dtype)
            if progress is not None:
                progress(min(i + batch_size, len(order)), len(order))
        return out


def trimmed_text_forward(m: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's ``encode_text`` (unnormalised) on the batch cut to its longest real sequence.

    Exact for the built-in causal text tower pooled at the end-of-text token (see
    :func:`_can_trim`); keeps gradients, so training uses it too.
    """
    import open_clip
    import torch

    length = max(int((tokens != 0).sum(dim=1).max().item()), 1)
    t = tokens[:, :length]
    cast = m.transformer.get_cast_dtype()
    x = m.token_embedding(t).to(cast) + m.positional_embedding[:length].to(cast)
    x = m.transformer(x, attn_mask=m.attn_mask[:length, :length])
    x = m.ln_final(x)
    x = open_clip.transformer.text_global_pool(x, t, m.text_pool_type, eos_token_id=getattr(m, "text_eos_id", None))
    if m.text_projection is not None:
        x = m.text_projection(x) if isinstance(m.text_projection, torch.nn.Linear) else x @ m.text_projection
    return x


def _can_trim(m: torch.nn.Module) -> bool:
    """Trimming is exact only for open_clip's built-in causal text tower with end-token pooling."""
    return (
        hasattr(m, "token_embedding")
        and getattr(m, "attn_mask", None) is not None
        and getattr(m, "text_pool_type", None) in ("argmax", "eos")
    )


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _hub_reachable(host: str | None = None, timeout: float = 2.0) -> bool:
    """Whether the model hub answers (``$CONVIS_HUB_HOST`` overrides the host)."""
    import os

    host = host or os.environ.get("CONVIS_HUB_HOST", "huggingface.co")
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _cached_pretrained_file(cfg: dict[str, Any]) -> str | None:
    """Path of already-downloaded weights for an open_clip pretrained config, if any."""
    if "file" in cfg and Path(cfg["file"]).exists():
        return cfg["file"]
    hub = cfg.get("hf_hub", "")
    if hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover - huggingface_hub ships with open_clip
            return None
        model_id, filename = hub.rstrip("/"), None
        if not hub.endswith("/"):
            model_id, filename = hub.rsplit("/", 1)
        for fn in [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]:
            hit = try_to_load_from_cache(model_id, fn)
            if isinstance(hit, str):
                return hit
    url = cfg.get("url", "")
    if url:
        local = Path.home() / ".cache" / "clip" / Path(url).name
        if local.exists():
            return str(local)
    return None


def resolve_weights(name: str, pretrained: str) -> tuple[str | None, str]:
    """Decide where weights come from: ``(checkpoint path or open_clip tag or None, weights id)``.

    Raises :class:`WeightsUnavailableError` with instructions when a tag is unknown, or when it
    is neither cached nor downloadable.
    """
    register_configs()
    if pretrained in ("none", "random", ""):
        return None, "random"
    if pretrained == "bundled":
        path = BUNDLED_WEIGHTS.get(name)
        if path is None:
            raise WeightsUnavailableError(
                f"model '{name}' has no bundled weights; bundled models: {', '.join(BUNDLED_WEIGHTS)}"
            )
        if not path.exists():
            raise WeightsUnavailableError(f"bundled weights for '{name}' are missing: {path}")
        return str(path), f"file:{_file_sha256(path)[:16]}"
    path = Path(pretrained).expanduser()
    if path.suffix in (".pt", ".pth", ".bin", ".safetensors", ".ckpt") or path.exists():
        if not path.is_file():
            raise WeightsUnavailableError(f"checkpoint file not found: {path}")
        return str(path), f"file:{_file_sha256(path)[:16]}"
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(name)
    if pretrained not in tags:
        hint = f"known tags for {name}: {', '.join(tags)}" if tags else f"open_clip has no pretrained weights for {name}"
        raise WeightsUnavailableError(
            f"unknown pretrained tag '{pretrained}' for model '{name}' ({hint}); "
            "or pass a checkpoint file path, or 'none' for random weights"
        )
    cfg = open_clip.get_pretrained_cfg(name, pretrained)
    cached = _cached_pretrained_file(cfg)
    if cached:
        return cached, f"tag:{pretrained}"
    if not _hub_reachable():
        where = cfg.get("hf_hub") or cfg.get("url") or "?"
        raise WeightsUnavailableError(
            f"pretrained weights '{name}' + '{pretrained}' are not on this machine and the internet "
            f"cannot be reached. Download them on a connected machine ({where}) and pass the file "
            "with --pretrained /path/to/checkpoint (or set HF_HOME to a copied Hugging Face cache); "
            "or use the bundled toy model (--model shapes-world --pretrained bundled), or --pretrained none "
            "for random weights (meaningless maps)"
        )
    return pretrained, f"tag:{pretrained}"


def load_model(
    name: str = DEFAULT_DEMO[0],
    pretrained: str = DEFAULT_DEMO[1],
    device: str | torch.device | None = None,
    seed: int = 0,
) -> ClipModel:
    """Load a CLIP model by architecture name and weights source.

    Args:
        name: an open_clip architecture (``ViT-B-32-quickgelu``) or one of ours (``convis-tiny``,
            ``shapes-world``).
        pretrained: ``"none"`` for seeded random weights, an open_clip tag, a checkpoint path, or
            ``"bundled"``.
        device: defaults to CUDA when available.
        seed: initialisation seed for random weights.

    Returns:
        A :class:`ClipModel` in eval mode. ``random_weights`` is True when no weights were loaded.
    """
    import open_clip
    import torch

    register_configs()
    if name not in open_clip.list_models():
        import difflib

        close = difflib.get_close_matches(name, open_clip.list_models(), n=3, cutoff=0.5)
        raise UnsupportedModelError(
            f"unknown model architecture '{name}'" + (f"; did you mean {', '.join(close)}?" if close else "")
        )
    source, weights_id = resolve_weights(name, pretrained)
    dev = torch.device(device) if device is not None else default_device()
    random = source is None
    if random:
        weights_id = f"random-seed{seed}"
        torch.manual_seed(seed)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=None if random else source, device=dev
        )
    except (RuntimeError, ValueError, KeyError, AssertionError) as e:  # a checkpoint that does not fit
        raise WeightsUnavailableError(f"could not load weights '{pretrained}' into '{name}': {str(e).splitlines()[0]}") from e
    if not random and Path(str(source)).suffix == ".safetensors":
        model = model.float()
    model.eval()
    tokenizer = open_clip.get_tokenizer(name)
    size = model.visual.image_size
    size = int(size[0] if isinstance(size, tuple | list) else size)
    cm = ClipModel(
        model=model,
        preprocess=preprocess,
        tokenizer=tokenizer,
        name=name,
        pretrained=pretrained,
        weights_id=weights_id,
        random_weights=random,
        device=dev,
        image_size=size,
    )
    if random:
        log.warning("model %s uses RANDOM weights: its maps carry no meaning", name)
    return cm


@lru_cache(maxsize=4)
def load_model_cached(name: str, pretrained: str, device: str | None = None, seed: int = 0) -> ClipModel:
    """Memoised :func:`load_model` (one instance per name/weights/device/seed)."""
    return load_model(name, pretrained, device=device, seed=seed)


def default_pretrained(name: str) -> str:
    """The weights a bare model name means: the one answer for the command line, the app and
    study builds.

    ``$CONVIS_PRETRAINED`` when ``$CONVIS_MODEL`` names this model (the operator's real weights);
    ``bundled`` for a model that ships with the project (Shapes-world); ``none`` (seeded random
    weights, flagged everywhere) for the project's own test architectures (``convis-tiny``);
    otherwise ``openai``, CLIP's original weights (a model without them fails with the tags
    open_clip knows for it).
    """
    import os

    if os.environ.get("CONVIS_MODEL") == name and os.environ.get("CONVIS_PRETRAINED"):
        return os.environ["CONVIS_PRETRAINED"]
    if name in BUNDLED_WEIGHTS:
        return "bundled"
    if (CONFIG_DIR / f"{name}.json").exists():
        return "none"
    return DEFAULT_REAL[1]


def default_model_choice() -> tuple[str, str]:
    """The model the product uses when the user names none.

    ``$CONVIS_MODEL`` (with :func:`default_pretrained`'s weights: ``$CONVIS_PRETRAINED``, else
    real CLIP weights) when set; otherwise the bundled Shapes-world toy model, so maps are
    meaningful offline; if even that is missing, the tiny random model (flagged everywhere).
    """
    import os

    name = os.environ.get("CONVIS_MODEL")
    if name:
        return name, default_pretrained(name)
    if BUNDLED_WEIGHTS[DEFAULT_DEMO[0]].exists():
        return DEFAULT_DEMO
    return "convis-tiny", "none"
