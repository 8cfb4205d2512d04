"""Crops to the lesion: roi_box and crop_boxes."""


from __future__ import annotations

import pytest
import torch

from dermlearn.transforms import (
    crop_boxes,
    roi_box,
)


def test_mask_crop_keeps_the_lesion(pad_images):
    for _, mask in pad_images:
        x0, y0, x1, y1 = roi_box(mask, theta=0.5, margin=0.1)
        inside = mask[y0:y1, x0:x1].sum()
        assert inside >= 0.99 * mask.sum()
        assert 0 <= x0 < x1 <= mask.shape[1] and 0 <= y0 < y1 <= mask.shape[0]
        assert abs((x1 - x0) - (y1 - y0)) <= 2  # aspect 1 kept
    assert roi_box(torch.zeros(10, 12)) == (0, 0, 12, 10)


def test_roi_box_peak_region_ignores_a_second_hot_spot():
    m = torch.zeros(40, 60)
    m[10:20, 5:15] = 1.0  # the peak: rows 10-19, columns 5-14
    m[12, 9] = 1.5
    m[25:35, 45:55] = 0.8  # a second spot above theta * peak = 0.75
    m[19, 15] = 1.0  # touches the peak blob only diagonally: 8-connected, so it belongs to it
    # 'all' spans both spots: columns 5-54, rows 10-34 -> 50 x 25, widened to 50 x 50 and clipped
    assert roi_box(m, theta=0.5, margin=0.0, region="all") == (5, 0, 55, 40)
    # 'peak': columns 5-15, rows 10-19 -> 11 x 10, widened to 11 x 11 about the centre (10.5, 15)
    assert roi_box(m, theta=0.5, margin=0.0, region="peak") == (5, 9, 16, 21)
    assert roi_box(m, theta=0.5, margin=0.0) == roi_box(m, theta=0.5, margin=0.0, region="all")  # the study's rule stays the default
    # the peak in the other spot: that spot is boxed
    m[30, 50] = 1.55  # theta * peak = 0.775: both spots stay above
    assert roi_box(m, theta=0.5, margin=0.0, region="peak") == (45, 25, 55, 35)
    # a single region: both rules agree
    one = torch.zeros(40, 60)
    one[10:20, 5:15] = 1.0
    assert roi_box(one, region="peak") == roi_box(one, region="all")


@pytest.mark.parametrize("kwargs, match", [
    ({"region": "largest"}, "region must be 'all' or 'peak'"),
    ({"margin": -0.1}, "margin must be at least 0"),
    ({"aspect": 0.0}, "aspect must be above 0"),
    ({"theta": 0.0}, "theta must be in"),
])  # fmt: skip
def test_roi_box_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        roi_box(torch.rand(8, 8), **kwargs)
    nan = torch.rand(8, 8)
    nan[2, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        roi_box(nan)


def test_crop_boxes_matches_slicing_and_resizing():
    x = torch.rand(2, 3, 64, 64)
    out = crop_boxes(x, [(8, 8, 40, 40), (0, 16, 32, 48)], size=32)
    torch.testing.assert_close(out[0], x[0, :, 8:40, 8:40], atol=1e-6, rtol=0)
    torch.testing.assert_close(out[1], x[1, :, 16:48, 0:32], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="boxes"):
        crop_boxes(x, [(0, 0, 8, 8)], 8)
