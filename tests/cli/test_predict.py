"""dermlearn predict: output names and heatmaps."""


from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dermlearn.cli import main
from tests.helpers import untrained_model_file


def test_output_names_never_collide():

    from dermlearn.cli.predict import output_names

    files = [Path("x/a/img.png"), Path("x/b/img.png"), Path("x/b/other.jpg"), Path("y/a/img.png")]
    assert output_names(files, "_gradcam.png") == [Path("x/a/img_gradcam.png"), Path("b/img_gradcam.png"),
                                                   Path("other_gradcam.png"), Path("y/a/img_gradcam.png")]  # fmt: skip
    assert output_names([Path("one.png")], ".png") == [Path("one.png")]
    with pytest.raises(ValueError, match="given twice"):
        output_names([Path("a/img.png"), Path("a/../a/img.png")], ".png")


def test_predict_heatmaps_of_same_named_files_do_not_overwrite(tmp_path, capsys):
    """a/img.png and b/img.png each get their heatmap (one used to overwrite the other), and
    a rerun says which files it replaces."""
    from PIL import Image

    model = untrained_model_file(tmp_path)
    rng = np.random.default_rng(0)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.fromarray(rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)).save(tmp_path / folder / "img.png")
    heat = tmp_path / "heat"
    args = ["predict", "--model", str(model), str(tmp_path / "a" / "img.png"), str(tmp_path / "b"), "--heatmaps", str(heat)]
    assert main(args) == 0
    written = sorted(p.relative_to(heat).as_posix() for p in heat.rglob("*.png"))
    assert written == ["a/img_gradcam.png", "b/img_gradcam.png"]
    assert (heat / "a" / "img_gradcam.png").read_bytes() != (heat / "b" / "img_gradcam.png").read_bytes()
    assert "replacing" not in capsys.readouterr().err
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"replacing {heat / 'a' / 'img_gradcam.png'}" in err and f"replacing {heat / 'b' / 'img_gradcam.png'}" in err


def test_photo_heatmap_is_drawn_on_the_photo_with_its_aspect(tmp_path):
    """The heatmap figure shows the photo at its own aspect, the map placed on the square
    the model sees, a colour bar, the file name and each panel's class and probability."""
    from PIL import Image

    from dermlearn.data.decode import presize_image
    from dermlearn.interpret.photo_heatmap import model_view_box, plot_photo_heatmap

    # the box is the square presize_image keeps: 300x200 at 32 px -> 48x32, crop 8..40
    assert model_view_box(300, 200, 32) == (50.0, 0.0, 250.0, 200.0)
    assert model_view_box(200, 300, 32) == (0.0, 50.0, 200.0, 250.0)
    photo = Image.fromarray(np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8))
    # on a smooth photo (PIL's block reduction aligns to the image origin, so noise differs
    # by a few levels), the box cut from the photo is what the model sees
    yy, xx = np.mgrid[0:200, 0:300]
    smooth = Image.fromarray(np.stack([xx * 0.8, yy * 1.2, (xx + yy) * 0.5], -1).astype(np.uint8))
    box = tuple(round(v) for v in model_view_box(*smooth.size, 32))
    assert (presize_image(smooth.crop(box), 32).int() - presize_image(smooth, 32).int()).abs().max() <= 1
    m1, m2 = torch.rand(32, 32), torch.rand(32, 32)
    fig = plot_photo_heatmap(photo, [("predicted: tumor 0.612", m1), ("runner-up: ulcer 0.301", m2)], title="lesions/p1.jpg")
    photo_ax, ax1, ax2, bar = fig.axes
    assert photo_ax.get_images()[0].get_array().shape == (200, 300, 3)
    assert photo_ax.get_xlim() == (0, 300) and photo_ax.get_ylim() == (200, 0)
    overlay = ax1.get_images()[1]
    assert overlay.get_extent() == [50.0, 250.0, 200.0, 0.0] and overlay.get_array().shape == (32, 32)
    np.testing.assert_array_equal(ax2.get_images()[1].get_array(), m2.numpy())
    assert "Grad-CAM" in bar.get_ylabel() and "lesions/p1.jpg" in fig._suptitle.get_text()
    assert [ax1.get_title(), ax2.get_title()] == ["predicted: tumor 0.612", "runner-up: ulcer 0.301"]
    assert len(ax1.patches) == 1  # the model's square is outlined: the photo is wider
    big = Image.new("RGB", (3008, 2000))
    fig = plot_photo_heatmap(big, [("p", m1)], title="big.jpg")
    assert fig.axes[0].get_images()[0].get_array().shape == (1064, 1600, 3)  # drawn at 1600 px, aspect kept
    with pytest.raises(ValueError, match="square"):
        plot_photo_heatmap(photo, [("p", torch.rand(32, 16))], title="x")
