import math

import pandas as pd
import pytest
import torch
from PIL import Image

from dermlearn.data.decode import mask_item
from dermlearn.experiments.who_fails import pointing_game_table
from dermlearn.interpret.pointing_game import pointing_hits


def _map_with_peak(y, x, h=10, w=10):
    m = torch.zeros(h, w)
    m[y, x] = 1.0
    return m


def test_a_hit_is_the_maximum_on_the_mask_within_the_tolerance():
    mask = torch.zeros(10, 10, dtype=torch.bool)
    mask[2:5, 2:5] = True
    maps = torch.stack([_map_with_peak(3, 3), _map_with_peak(3, 7), _map_with_peak(3, 6), _map_with_peak(9, 9)])
    masks = mask.expand(4, 10, 10)
    assert pointing_hits(maps, masks).tolist() == [1.0, 0.0, 0.0, 0.0]
    # one pixel of tolerance reaches column 5; two reach column 6; the far corner stays a miss
    assert pointing_hits(maps, masks, tolerance=1).tolist() == [1.0, 0.0, 0.0, 0.0]
    assert pointing_hits(maps, masks, tolerance=2).tolist() == [1.0, 0.0, 1.0, 0.0]
    # ties at the maximum: a hit when any of them lies on the mask
    tied = _map_with_peak(3, 3) + _map_with_peak(9, 9)
    assert pointing_hits(tied[None], mask[None]).item() == 1.0


def test_undefined_answers_are_nan_not_misses():
    mask = torch.zeros(1, 10, 10, dtype=torch.bool)
    hits = pointing_hits(_map_with_peak(3, 3)[None], mask)  # empty mask
    flat = pointing_hits(torch.zeros(1, 10, 10), torch.ones(1, 10, 10, dtype=torch.bool))  # Grad-CAM with no evidence
    assert math.isnan(hits.item()) and math.isnan(flat.item())
    with pytest.raises(ValueError, match="both be"):
        pointing_hits(torch.zeros(1, 10, 10), torch.zeros(1, 10, 9))
    with pytest.raises(ValueError, match="tolerance"):
        pointing_hits(torch.zeros(1, 10, 10), torch.zeros(1, 10, 10), tolerance=-1)


def test_rates_are_split_by_correctness_and_exclude_undefined_images():
    hits = torch.tensor([1.0, 0.0, 1.0, float("nan"), 1.0, 0.0])
    correct = torch.tensor([True, True, True, True, False, False])
    table = pointing_game_table(hits, correct, units=["a", "a", "b", "c", "d", "e"], n_boot=100).set_index("predictions")
    assert table.loc["all", ["images", "undefined", "hits"]].tolist() == [5, 1, 3]
    assert table.loc["correct", "hit rate"] == pytest.approx(2 / 3) and table.loc["correct", "undefined"] == 1
    assert table.loc["wrong", "hit rate"] == pytest.approx(0.5) and table.loc["wrong", "images"] == 2
    assert 0 <= table.loc["all", "low"] <= 0.6 <= table.loc["all", "high"] <= 1
    empty = pointing_game_table(hits[:2], torch.tensor([True, True]), n_boot=100).set_index("predictions")
    assert empty.loc["wrong", "images"] == 0 and pd.isna(empty.loc["wrong", "hit rate"])


def test_masks_are_cut_as_their_images_are(tmp_path):
    # a 60 x 40 mask, white in its right third: the shorter side goes to 20 (scale 1/2), the
    # width to 30, and the centre square starts 5 px in, so the white columns 40..59 land on 15..19
    arr = torch.zeros(40, 60, dtype=torch.uint8)
    arr[:, 40:] = 255
    Image.fromarray(arr.numpy(), mode="L").convert("1").save(tmp_path / "m.png")
    m = mask_item(tmp_path / "m.png", 20)
    assert m.dtype == torch.bool and m.shape == (20, 20)
    assert m[:, 15:].all() and not m[:, :15].any()
    with pytest.raises(ValueError, match="nope.png"):
        mask_item(tmp_path / "nope.png", 20)
