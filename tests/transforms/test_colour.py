"""Shades of Gray colour constancy."""


from __future__ import annotations

import pytest
import torch

from dermlearn.transforms import (
    RandomColourCast,
    estimate_illuminant,
    shades_of_gray,
)


# ---------------------------------------------------------------------------- colour constancy
def test_shades_of_gray(pad_images):
    x = torch.stack([im for im, _ in pad_images[:3]]).float() / 255 * 0.6  # nothing saturates or clips
    # p = 1 is Gray World: channel gains mean(means) / mean_c over the non-border pixels
    e1 = estimate_illuminant(x, p=1, border=0.0)
    torch.testing.assert_close(e1.float(), x.mean(dim=(2, 3)), rtol=1e-5, atol=1e-6)
    gw = x * (x.mean(dim=(2, 3)).mean(1, keepdim=True) / x.mean(dim=(2, 3)))[:, :, None, None]
    torch.testing.assert_close(shades_of_gray(x, p=1, border=0.0), gw.clamp(0, 1), rtol=1e-5, atol=1e-6)
    # a per-channel cast is removed up to one global factor per image
    cast = torch.tensor([1.15, 0.95, 0.85]).view(1, 3, 1, 1)
    a, b = shades_of_gray(x), shades_of_gray(x * cast)
    k = b.mean(dim=(1, 2, 3), keepdim=True) / a.mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(b, a * k, rtol=1e-4, atol=1e-5)
    assert (x * cast - x).abs().mean() > 0.01  # the cast was real
    # a neutral grey image is unchanged
    grey = torch.full((1, 3, 16, 16), 0.4)
    torch.testing.assert_close(shades_of_gray(grey), grey)
    rc = RandomColourCast(p=1.0, seed=1)
    assert not torch.equal(rc(x), x)
    with pytest.raises(ValueError, match="p must be >= 1"):
        shades_of_gray(x, p=0.5)


def test_shades_of_gray_leaves_blown_out_and_black_images(pad_images):
    # a batch holding a photo with every pixel saturated and a black one: those two pass
    # unchanged (nothing to estimate a cast from) and the others of the batch are corrected
    x = torch.stack([im for im, _ in pad_images[:3]])
    x[1], x[2] = 255, 0
    e = estimate_illuminant(x)
    assert torch.isnan(e[1]).all() and torch.isfinite(e[0]).all()
    y = shades_of_gray(x)
    assert torch.equal(y[1], x[1]) and torch.equal(y[2], x[2])
    torch.testing.assert_close(y[:1], shades_of_gray(x[:1]))
