"""What every transform shares: batches equal single images, uint8 and float paths, eager value checks, seeded randomness."""


from __future__ import annotations

import pytest
import torch

from dermlearn.transforms import (
    CorrectIllumination,
    RandomColourCast,
    RandomGamma,
    RandomIllumination,
    ShadesOfGray,
    adjust_gamma,
    correct_illumination,
    shades_of_gray,
)


def test_batched_equals_per_image_and_uint8_path(pad_images):
    x = torch.stack([im for im, _ in pad_images[:3]])
    for f in (correct_illumination, shades_of_gray, lambda t: adjust_gamma(t, 0.8)):
        batch = f(x)
        assert batch.dtype == torch.uint8
        xf = x.float() / 255
        fb = f(xf)
        for i in range(3):  # float path: same numbers; uint8: at most 1 level at rounding boundaries
            torch.testing.assert_close(fb[i], f(xf[i : i + 1])[0], atol=1e-5, rtol=0)
            d = (batch[i].int() - f(x[i : i + 1])[0].int()).abs()
            assert d.max() <= 1 and (d > 0).float().mean() < 1e-3
        assert (fb.mul(255).round() - batch.float()).abs().max() <= 1
    assert torch.equal(CorrectIllumination()(x), correct_illumination(x)) and torch.equal(ShadesOfGray()(x), shades_of_gray(x))
    ri = RandomIllumination(p=1.0, seed=0)
    params = ri.sample(3)
    assert torch.equal(ri.apply_params(x, params), ri.apply_params(x, params)) and (ri.apply_params(x, params).float().mean() < x.float().mean())


def test_value_checks_run_eagerly_and_on_old_torch(monkeypatch):
    """The checks skipped while tracing still run in eager code, also on torch 2.1-2.2, which
    has no ``torch.compiler.is_compiling`` (setup.cfg allows them)."""
    from dermlearn.transforms._common import tracing

    bad = torch.full((1, 3, 8, 8), 2.0)
    for old_torch in (False, True):
        if old_torch:  # torch 2.1-2.2: only torch._dynamo.is_compiling, a function of its own
            monkeypatch.delattr(torch.compiler, "is_compiling")
            monkeypatch.setattr(torch._dynamo, "is_compiling", lambda: False)
        assert tracing() is False
        with pytest.raises(ValueError, match=r"float images in \[0, 1\]"):
            correct_illumination(bad)
        with pytest.raises(ValueError, match="gamma must be > 0"):
            adjust_gamma(torch.rand(1, 3, 8, 8), torch.tensor([-1.0]))


def test_degradation_is_seeded():
    from dermlearn.experiments.photometric import degrade

    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(degrade(x, 1), degrade(x, 1)) and not torch.equal(degrade(x, 1), degrade(x, 2))


def test_random_transforms_keep_module_apply():
    """``nn.Module.apply(fn)`` recurses into children; the random transforms must not shadow it."""
    from dermlearn.transforms.augment import BatchAugment

    seq = torch.nn.Sequential(RandomGamma(seed=0), RandomIllumination(seed=0), RandomColourCast(seed=0), BatchAugment(8, seed=0))
    seen = []
    assert seq.apply(seen.append) is seq
    assert len(seen) == 5  # the four transforms and the Sequential
