"""Batched augmentation: replay, consistency, the fused colour pass against a float64 reference."""


from __future__ import annotations

import pytest
import torch

from dermlearn.data import (
    BatchAugment,
)


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))


def test_augment_flip_identity_replay_and_batch_consistency():
    x = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    flip_only = BatchAugment(16, max_rotate=0, max_zoom=1.0, max_warp=0, max_lighting=0, seed=0)
    p = flip_only.sample(4)
    out = flip_only.apply_params(x, p)
    for i in range(4):
        ref = x[i].float() / 255
        if p.matrix[i, 0, 0] < 0:
            ref = ref.flip(-1)
        if p.matrix[i, 1, 1] < 0:
            ref = ref.flip(-2)
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0)
    aug = BatchAugment(12, seed=3)
    p = aug.sample(4)
    full = aug.apply_params(x, p)
    assert full.shape == (4, 3, 12, 12) and full.min() >= 0 and full.max() <= 1
    from dermlearn.transforms.augment import AugmentParams

    for i in range(4):
        one = AugmentParams(p.matrix[i : i + 1], p.brightness[i : i + 1], p.contrast[i : i + 1], p.saturation[i : i + 1])
        torch.testing.assert_close(aug.apply_params(x[i : i + 1], one), full[i : i + 1], atol=1e-6, rtol=0)
    a, b = BatchAugment(12, seed=9), BatchAugment(12, seed=9)
    torch.testing.assert_close(a(x), b(x))
    with pytest.raises(ValueError, match="max_zoom"):
        BatchAugment(12, max_zoom=0.5)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        aug(torch.zeros(3, 12, 12))


def test_fused_colour_pass_equals_stepwise_float64_reference():
    """Saturation, contrast, brightness, clamp and normalisation, done step by step in float64."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8, generator=g)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    aug = BatchAugment(16, flip=False, flip_vert=False, max_rotate=0, max_zoom=1.0, max_warp=0, max_lighting=0.5,
                       p_lighting=1.0, seed=1, mean=mean, std=std)  # fmt: skip
    p = aug.sample(5)
    out = aug.apply_params(x, p)
    v = x.double() / 255
    gray = 0.299 * v[:, 0:1] + 0.587 * v[:, 1:2] + 0.114 * v[:, 2:3]
    v = gray + (v - gray) * p.saturation.double().view(5, 1, 1, 1)
    m = v.mean(dim=(1, 2, 3), keepdim=True)
    v = (v - m) * p.contrast.double().view(5, 1, 1, 1) + m + p.brightness.double().view(5, 1, 1, 1)
    v = v.clamp(0, 1)
    ref = (v - torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)) / torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    torch.testing.assert_close(out.double(), ref, atol=2e-5, rtol=0)
    assert (p.brightness != 0).all() and (p.contrast != 1).all()


def test_uint8_warp_on_the_cpu_matches_grid_sample_on_float_input():
    """uint8 batches on the CPU are warped by OpenCV per channel plane, float batches by
    ``grid_sample``: the same sampling points, so the two agree to the 8-bit rounding, at
    the edges (reflection) too. Large rotations, zooms and perspective push many sampling
    points outside the image."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6, 3, 40, 36), dtype=torch.uint8, generator=g)
    aug = BatchAugment(32, max_rotate=180, max_zoom=1.6, max_warp=0.4, max_lighting=0.3, p_affine=1.0, p_lighting=1.0,
                       seed=2, mean=(0.5, 0.4, 0.3), std=(0.25, 0.2, 0.3))  # fmt: skip
    p = aug.sample(6)
    assert (p.matrix[:, 2, :2].abs() > 0).all()  # every sample has a perspective part
    warped = aug._warp_planes(x, p.matrix)
    reference = aug._warp_grid_sample(x.float(), p.matrix)
    assert warped.shape == reference.shape == (6, 3, 32, 32)
    assert (warped == warped.round()).all()  # whole 8-bit levels
    assert (warped - reference).abs().max() <= 0.52
    # through the colour pass (lighting and normalisation amplify the rounding by at most
    # contrast x saturation / std, here < 1.7 / 0.2)
    out_uint8 = aug.apply_params(x, p)
    out_float = aug.apply_params(x.float() / 255, p)
    assert (out_uint8 - out_float).abs().max() <= 0.52 / 255 * 1.7 / 0.2
    assert not torch.equal(out_uint8, out_float)  # the two paths did run
