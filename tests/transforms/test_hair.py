"""Hair removal."""


from __future__ import annotations

import numpy as np
import pytest
import torch

from dermlearn.transforms import (
    hair_mask,
    remove_hair,
)


# ---------------------------------------------------------------------------- hair
def test_hair_removal_finds_and_removes_thin_dark_lines(pad_images):
    fractions = [float(hair_mask(im).float().mean()) for im, _ in pad_images]
    assert np.median(fractions) < 0.05
    smooth = min(pad_images, key=lambda p: float(hair_mask(p[0]).float().mean()))[0]
    hairy = smooth.clone()
    lines = torch.zeros(smooth.shape[1:], dtype=torch.bool)
    for k in range(6):  # thin dark diagonal "hairs", 2 px wide
        for t in range(300):
            yy, xx = t, (40 * k + t // 3) % 300
            lines[yy, xx : xx + 2] = True
    hairy[:, lines] = 40
    out, mask = remove_hair(hairy)
    assert mask[lines].float().mean() > 0.8
    before = (hairy[:, lines].float() - smooth[:, lines].float()).abs().mean()
    after = (out[:, lines].float() - smooth[:, lines].float()).abs().mean()
    assert after < 0.25 * before
    with pytest.raises(ValueError, match="odd"):
        hair_mask(hairy, kernel=8)
