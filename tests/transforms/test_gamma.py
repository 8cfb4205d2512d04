"""Gamma: the convention, automatic gamma on skin, random gamma's distribution."""


from __future__ import annotations

import math

import pytest
import torch

from dermlearn.transforms import (
    AdjustGamma,
    RandomGamma,
    adjust_gamma,
    auto_gamma,
    correct_illumination,
)
from dermlearn.transforms._common import luminance


# ---------------------------------------------------------------------------- gamma
def test_gamma_convention_identity_round_trip_and_rounding():
    x = torch.rand(4, 3, 8, 8)
    assert torch.equal(adjust_gamma(x, 1.0), x)
    torch.testing.assert_close(adjust_gamma(adjust_gamma(x, 0.7), 1 / 0.7), x, atol=1e-6, rtol=0)
    quarter = torch.full((1, 3, 2, 2), 0.25)
    assert float(adjust_gamma(quarter, 0.5)[0, 0, 0, 0]) == pytest.approx(0.5)  # gamma < 1 brightens
    u = torch.full((1, 3, 2, 2), 128, dtype=torch.uint8)
    assert int(adjust_gamma(u, 0.5)[0, 0, 0, 0]) == 181  # 255 * sqrt(128/255) = 180.65: rounded, not truncated
    assert torch.equal(adjust_gamma(u, 1.0), u)
    every = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(1, 3, 16, 16).contiguous()
    ref = torch.round(255 * (torch.arange(256, dtype=torch.float64) / 255) ** 1.3).to(torch.uint8)
    assert torch.equal(adjust_gamma(every, 1.3)[0, 0].flatten(), ref)
    per = adjust_gamma(x, torch.tensor([0.5, 1.0, 2.0, 1.0]))
    torch.testing.assert_close(per[0], x[0] ** 0.5)
    assert torch.equal(per[1], x[1]) and torch.equal(AdjustGamma(2.0)(x), adjust_gamma(x, 2.0))
    with pytest.raises(ValueError, match="gamma must be > 0"):
        adjust_gamma(x, 0.0)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        adjust_gamma(torch.rand(3, 8, 8), 1.0)
    with pytest.raises(TypeError, match="uint8 or float"):
        adjust_gamma(torch.ones(1, 3, 2, 2, dtype=torch.int32), 1.0)
    with pytest.raises(ValueError, match=r"in \[0, 1\], got values in \[0, 255\]"):
        correct_illumination(torch.full((1, 3, 8, 8), 255.0).index_fill_(2, torch.tensor([0]), 0.0))


def test_auto_gamma_brings_skin_luminance_to_target(pad_images):
    x = torch.stack([im for im, _ in pad_images[:4]])
    masks = torch.stack([m for _, m in pad_images[:4]])
    exact = auto_gamma(x, target=0.55, mask=masks, work_size=10_000)  # no downsampling: exact
    g = auto_gamma(x, target=0.55, mask=masks)  # estimated on a <= 96 px luminance
    y = luminance(x.double() / 255)[:, 0]
    for i in range(4):
        assert float((y[i][~masks[i]] ** float(exact[i])).mean()) == pytest.approx(0.55, abs=1e-4)
        assert float((y[i][~masks[i]] ** float(g[i])).mean()) == pytest.approx(0.55, abs=0.01)
    out = adjust_gamma(x, g)
    got = luminance(out.double() / 255)[:, 0]
    assert all(abs(float(got[i][~masks[i]].mean()) - 0.55) < 0.03 for i in range(4))
    r = RandomGamma((0.8, 1.25), p=1.0, seed=3)
    gs = r.sample(4)
    assert ((gs >= 0.8) & (gs <= 1.25)).all() and torch.equal(r.apply_params(x, gs), adjust_gamma(x, gs))


def test_random_gamma_draws_log_uniformly():
    """log(gamma) is uniform on [log low, log high]: the median is the geometric mean of the
    bounds (a uniform draw in gamma puts it at the arithmetic mean) and each half of the
    log range holds half of the draws."""
    from dermlearn.transforms import RandomGamma

    g = RandomGamma((0.5, 2.0), p=1.0, seed=0).sample(20000).double()
    assert float(g.median()) == pytest.approx(1.0, abs=0.02)  # uniform in gamma: 1.25
    assert float((g < 1.0).double().mean()) == pytest.approx(0.5, abs=0.015)
    assert float(g.min()) >= 0.5 and float(g.max()) <= 2.0
    assert float(torch.log(g).std()) == pytest.approx(math.log(4) / math.sqrt(12), rel=0.03)
