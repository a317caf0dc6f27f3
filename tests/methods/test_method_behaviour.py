"""Per-method tests that fail when a method is wrong (flipped, transposed, wrong target, leaked hooks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_grad_cam.utils.image import scale_cam_image

from convis_core import REGISTRY
from convis_core.boxes import grid_boxes
from convis_core.methods import get_method, to_frame
from convis_core.methods._clip import ImageEmbedder, TokensToGrid
from convis_core.methods.attention_relevance import recording_attention
from convis_core.methods.gradcam import target_layer
from convis_core.methods.occlusion import OcclusionParams, frame_boxes, occlusion_map
from convis_core.methods.rise import mask_seeds, rise_masks
from convis_core.result import normalise

from .conftest import context, half_image, half_model, lean

MODEL_METHODS = ("gradcam", "attention_relevance", "rise", "occlusion", "patch_similarity")
SETTINGS = {"rise": {"n_masks": 300}, "occlusion": {"stride": 32}}  # default grid: see the occlusion test
MARGIN = {"rise": 0.05}  # Monte-Carlo noise; uncentred RISE scores ~0.01 here, a flipped map < 0


@pytest.fixture(scope="module")
def hand_built():
    return half_model(0)


@pytest.mark.parametrize("side", ["left", "right", "top", "bottom"])
@pytest.mark.parametrize("name", MODEL_METHODS)
def test_map_leans_to_the_half_that_carries_the_signal(hand_built, name: str, side: str) -> None:
    r = get_method(name).explain(context(hand_built, half_image(10, side)), **SETTINGS.get(name, {}))
    assert lean(r.map, side) > MARGIN.get(name, 0.1), (name, side, lean(r.map, side))


@pytest.mark.parametrize("name", ["gradcam", "rise", "occlusion", "patch_similarity"])
def test_resnet_maps_lean_to_the_signal(tiny_rn, name: str) -> None:
    fast = {"rise": {"n_masks": 150}, "occlusion": {"stride": 48}}
    for side in ("left", "bottom"):
        r = get_method(name).explain(context(tiny_rn, half_image(11, side)), **fast.get(name, {}))
        assert lean(r.map, side) > 0.2, (name, side, lean(r.map, side))


@pytest.mark.parametrize("name", ["random", "centre"])
def test_baselines_ignore_the_signal(hand_built, name: str) -> None:
    a = get_method(name).explain(context(hand_built, half_image(10, "left"))).map
    b = get_method(name).explain(context(hand_built, half_image(10, "right"))).map
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- Grad-CAM
def _direct_gradcam(ctx) -> np.ndarray:
    """Grad-CAM written out by hand: relu(sum_c mean_xy(dS/dA_c) A_c), S = cos(image, text)."""
    model = ctx.model
    layer, _ = target_layer(model)
    acts: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: acts.append(out))
    try:
        e = F.normalize(model.model.encode_image(ctx.frame_tensor()), dim=-1)
        grad = torch.autograd.grad(e[0] @ ctx.text_embedding, acts[0])[0]
    finally:
        handle.remove()
    a, g = acts[0][0].detach(), grad[0]
    if a.ndim == 2:  # ViT tokens (1 + 16, C): drop the class token, 4x4 patches of 8 px in 32 px
        a, g = a[1:].T.reshape(-1, 4, 4), g[1:].T.reshape(-1, 4, 4)
    cam = torch.relu((g.mean(dim=(1, 2))[:, None, None] * a).sum(0)).numpy()
    size = model.image_size
    return normalise(to_frame(scale_cam_image(cam[None], (size, size))[0]))


@pytest.mark.parametrize("arch", ["tiny_vit", "tiny_rn"])
def test_library_gradcam_matches_the_formula(arch: str, request: pytest.FixtureRequest) -> None:
    ctx = context(request.getfixturevalue(arch), half_image(5))
    got = get_method("gradcam").explain(ctx).map
    want = _direct_gradcam(ctx)
    assert want.std() > 0.05  # not a trivial map
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_gradcam_releases_hooks_and_grad_flags_even_on_error(tiny_vit) -> None:
    ctx = context(tiny_vit, half_image(5))
    layer, _ = target_layer(tiny_vit)
    get_method("gradcam").explain(ctx)
    assert not layer._forward_hooks
    assert all(p.requires_grad and p.grad is None for p in tiny_vit.model.parameters())
    ctx.text_embedding = torch.ones(7)  # wrong size: the target fails inside the library
    with pytest.raises(RuntimeError):
        get_method("gradcam").explain(ctx)
    assert not layer._forward_hooks
    assert all(p.requires_grad for p in tiny_vit.model.parameters())


def test_reshape_transform_uses_the_model_grid() -> None:
    t = torch.arange(2 * (1 + 6) * 3, dtype=torch.float32).reshape(2, 7, 3)  # class + 2x3 grid
    g = TokensToGrid((2, 3))(t)
    assert g.shape == (2, 3, 2, 3)
    assert torch.equal(g[1, :, 1, 2], t[1, 6])  # last patch -> bottom-right
    with pytest.raises(ValueError, match="4x4"):
        TokensToGrid((4, 4))(t)


# ------------------------------------------------------------------------ attention relevance
def test_recorded_attention_is_exact_and_restored(tiny_vit) -> None:
    x = context(tiny_vit, half_image(2)).frame_tensor()
    embed = ImageEmbedder(tiny_vit)
    with torch.no_grad():
        before = embed(x)
        with recording_attention(tiny_vit) as store:
            during = embed(x)
        after = embed(x)
    torch.testing.assert_close(during, before, atol=1e-5, rtol=1e-5)
    assert len(store) == 2 and store[0].shape == (1, 2, 17, 17)  # blocks, heads, tokens
    torch.testing.assert_close(store[0].sum(-1), torch.ones(1, 2, 17))
    assert all("attention" not in b.__dict__ for b in tiny_vit.model.visual.transformer.resblocks)
    torch.testing.assert_close(after, before)


def test_relevance_from_the_last_block_only_differs_from_all_blocks(hand_built) -> None:
    ctx = context(hand_built, half_image(10, "left"))
    a = get_method("attention_relevance").explain(ctx).map
    b = get_method("attention_relevance").explain(ctx, start_layer=1).map
    assert not np.array_equal(a, b) and lean(b, "left") > 0.1


# ------------------------------------------------------------------------------- RISE
def test_rise_masks_are_smooth_seeded_and_batch_independent(tiny_vit) -> None:
    coarse, shifts = mask_seeds(400, 8, 0.3, 32, seed=1)
    masks = rise_masks(coarse, shifts, 32)
    assert masks.shape == (400, 32, 32) and masks.min() >= 0 and masks.max() <= 1
    assert abs(float(masks.mean()) - 0.3) < 0.03
    assert 0 < ((masks > 0) & (masks < 1)).float().mean() < 1  # smooth, not binary
    ctx = context(tiny_vit, half_image(4))
    rise = get_method("rise")
    a = rise.explain(ctx, n_masks=40, batch_size=7).map
    np.testing.assert_allclose(a, rise.explain(ctx, n_masks=40, batch_size=64).map, atol=1e-5)  # same masks
    assert not np.array_equal(a, rise.explain(ctx, n_masks=40, seed=1).map)


# --------------------------------------------------------------------------- occlusion
def test_occlusion_uses_convis_grid_and_averages_by_coverage(tiny_vit) -> None:
    boxes, canvas = frame_boxes(OcclusionParams())
    np.testing.assert_array_equal(boxes, grid_boxes(480, (128, 64), 16, pad=128, frame=224))
    assert canvas == 480 and len(boxes) == 21 * 21 + 17 * 17  # corners 16..336 (128 px), 80..336 (64 px)
    x = torch.ones(1, 3, 32, 32)

    def blanked_top_left(batch: torch.Tensor) -> np.ndarray:  # drop = blanked share of the top-left quadrant
        return (batch[:, 0, :16, :16] == 0).float().mean(dim=(1, 2)).numpy()

    m, drops = occlusion_map(x, boxes, 128, blanked_top_left, 100, canvas)
    assert drops.max() == 1.0 and drops.min() == 0.0
    assert m[:112, :112].mean() > 4 * m[112:, 112:].mean()
    m1, _ = occlusion_map(x, boxes, 128, lambda b: np.ones(len(b)), 100, canvas)
    np.testing.assert_allclose(m1, 1.0)  # a constant drop is a constant map


# ------------------------------------------------------------------ patch similarity / baselines
def test_patch_similarity_is_labelled_as_raw() -> None:
    m = REGISTRY["patch_similarity"]
    assert "not an attribution" in m.label and "raw" in m.label.lower()


def test_centre_and_random_baselines() -> None:
    from convis_core.methods.baselines import CentreBias, CentreParams, RandomMap, RandomParams

    c = normalise(CentreBias().compute(None, CentreParams()).map)
    assert c[111:113, 111:113].min() == 1.0 or c.max() - c[111:113, 111:113].min() < 1e-6
    np.testing.assert_allclose(c, c[::-1, ::-1], atol=1e-6)
    assert c[0, 0] < 0.05
    r0 = RandomMap().compute(None, RandomParams(seed=0)).map
    r1 = RandomMap().compute(None, RandomParams(seed=1)).map
    assert not np.allclose(r0, r1)
    steps = np.abs(np.diff(normalise(r0), axis=1)).max()
    assert steps < 0.05  # smooth: neighbouring pixels differ little
