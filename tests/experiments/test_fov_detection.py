"""The field-of-view detector's measurement on unseen images: the corruptions it applies
(MedMNIST-C's black corner, synthetic dermoscope fields) and a toy-size run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from dermlearn.experiments.fov_detection import (
    BLACK_CORNER_SEVERITIES,
    black_corner,
    synthetic_field,
)
from tests.helpers import require_data


def _grey(size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(60, 250, (3, size, size), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("multiplier", BLACK_CORNER_SEVERITIES)
def test_black_corner_blacks_out_what_lies_outside_the_circle(multiplier):
    x = _grey(28)
    y, c = black_corner(x, multiplier)
    yy, xx = np.mgrid[0:28, 0:28] + 0.5
    d = torch.from_numpy(np.hypot(xx - c.cx, yy - c.cy))
    black = (y == 0).all(0)
    assert c.r == int(14 * multiplier)
    assert not black[d < c.r - 1].any() and black[d > c.r + 1].all()  # OpenCV's raster within a pixel of the circle
    assert torch.equal(y[:, ~black], x[:, ~black])  # nothing else changes
    assert torch.equal(x, _grey(28))  # the input is left as it was


@pytest.mark.parametrize("severity", range(5))
def test_black_corner_equals_medmnistc(severity):
    microscopy = pytest.importorskip("medmnistc.corruptions.microscopy", reason="medmnistc is not installed")
    from PIL import Image

    x = _grey(28)
    theirs = microscopy.BlackCorner(severity_params=list(BLACK_CORNER_SEVERITIES)).apply(Image.fromarray(x.permute(1, 2, 0).numpy()), severity)
    assert torch.equal(black_corner(x, BLACK_CORNER_SEVERITIES[severity])[0], torch.from_numpy(theirs).permute(2, 0, 1))


@pytest.mark.parametrize("kind", ["dark", "pale"])
def test_synthetic_fields_cover_the_outside_of_their_circle(kind):
    x = _grey(224)
    y, c, params = synthetic_field(x, kind, np.random.default_rng(1))
    assert 0.38 <= params["radius"] <= 0.62 and params["offset"] <= 0.08 and c.r == pytest.approx(params["radius"] * 224)
    yy, xx = np.mgrid[0:224, 0:224] + 0.5
    d = torch.from_numpy(np.hypot(xx - c.cx, yy - c.cy))
    inside, outside = d < c.r - 10, d > c.r + 10  # beyond the soft edge
    assert torch.equal(y[:, inside], x[:, inside])
    out = y[:, outside].float()
    if kind == "dark":
        assert out.mean() < 70
    else:
        assert 120 < out.mean() < 240 and (out.max(0).values - out.min(0).values).median() < 30  # grey, not skin
    with pytest.raises(ValueError, match="kind"):
        synthetic_field(x, "blue", np.random.default_rng(1))


def test_fov_detection_experiment_smoke(public_data_cache, tmp_path):
    require_data("dermamnist.tar.gz")
    from dermlearn.experiments.fov_detection import main

    out = tmp_path / "fov"
    assert main(["--quick", "--n", "6", "--methods", "dark", "--out", str(out)]) == 0
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 2 + 5 + 2 and (table["images"] == 6).all()
    assert table["rate"].equals(table["detected"] / table["images"]) and (table["low"] <= table["rate"]).all()
    per_image = pd.read_csv(out / "per_image.csv")
    assert len(per_image) == 9 * 6 and per_image.query("condition == 'clean'")["located"].isna().all()
    assert per_image.groupby(["condition", "severity", "side"])["detected"].sum().sum() == table["detected"].sum()
    assert len(json.loads((out / "config.json").read_text())["images"]) == 6
