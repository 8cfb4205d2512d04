"""Illumination correction on real photos and on dark lesions."""


from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dermlearn.transforms import (
    correct_illumination,
    illumination_ramp,
)
from dermlearn.transforms._common import luminance


# ---------------------------------------------------------------------------- illumination
def test_illumination_ramp_is_removed_from_real_photos(pad_images):
    """correct(ramp * img) matches correct(img) (means matched): the correction removes the
    added field. Compared with the uncorrected original, the photo's own uneven lighting
    (which the correction also flattens) would count as error."""
    starts, errors = [], []
    for img, _ in pad_images:
        x = img[None].float() / 255
        for angle in (0.0, 2.5):
            deg = x * illumination_ramp(1, x.shape[2], x.shape[3], torch.tensor([0.4]), torch.tensor([angle]))
            ref = correct_illumination(x)
            got = correct_illumination(deg)
            got = got * ref.mean() / got.mean()
            starts.append(float((deg * x.mean() / deg.mean() - x).abs().mean() / x.mean()))
            errors.append(float((got - ref).abs().mean() / ref.mean()))
    assert np.mean(starts) > 0.15
    assert np.mean(errors) < 0.05 and max(errors) < 0.07, (np.mean(errors), max(errors))


def test_dark_lesion_keeps_its_contrast():
    s = 200
    yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    lesion = ((xx - 100) ** 2 + (yy - 100) ** 2) < (0.2 * s) ** 2
    img = torch.full((1, 3, s, s), 0.7)
    img[:, :, lesion] = 0.3
    true = 0.3 / 0.7
    lit = img * illumination_ramp(1, s, s, torch.tensor([0.5]), torch.tensor([0.3]))
    out = correct_illumination(lit)
    ratio = float(out[0, :, lesion].mean() / out[0, :, ~lesion].mean())
    assert abs(ratio - true) / true < 0.05
    plain_blur = F.avg_pool2d(F.pad(luminance(lit), (50,) * 4, mode="replicate"), 101, stride=1)  # what a blur alone does
    blurred = lit * plain_blur.mean() / plain_blur
    assert abs(float(blurred[0, :, lesion].mean() / blurred[0, :, ~lesion].mean()) - true) / true > 0.1
    torch.testing.assert_close(correct_illumination(torch.full((1, 3, 32, 32), 0.5)), torch.full((1, 3, 32, 32), 0.5))
