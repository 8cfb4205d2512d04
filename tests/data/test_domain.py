"""A model file keeps its training domain, and predictions warn about inputs clearly out of it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import dermlearn as dl
from dermlearn.cli import main
from dermlearn.data.domain import FEATURES, colour_features
from tests.helpers import require_data


def test_colour_features_closed_form():
    img = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
    img[0, 0] = 255  # pure red, every pixel
    f = colour_features(img)[0]
    assert dict(zip(FEATURES, f.tolist())) == {"mean_r": 1.0, "mean_g": 0.0, "mean_b": 0.0, "std_r": 0.0, "std_g": 0.0,
                                               "std_b": 0.0, "saturation": 1.0, "dark_border": 0.0}  # fmt: skip
    img[0, :, :8] = 0  # a black band over the top eighth: half of the 4-px border ring's top rows
    f = colour_features(img)[0]
    assert f[FEATURES.index("dark_border")] == pytest.approx((4 * 32) / (32 * 32 - 24 * 24))
    with pytest.raises(ValueError, match=r"images must be \(B, 3, H, W\)"):
        colour_features(img[0])


def test_input_domain_flags_images_unlike_the_training_ones():
    ds = dl.make_lesions(200, 48, 3, seed=0, confounders=("illumination", "gamma"), confound_p=0.3)
    domain = dl.InputDomain.fit(ds.images[:150], modality="clinical", data="synthetic")
    held_out = domain.distance(ds.images[150:])
    assert (held_out <= domain.threshold).mean() >= 0.95  # the same kind of images pass
    blue = torch.zeros(1, 3, 48, 48, dtype=torch.uint8)
    blue[:, 2] = 200
    assert domain.distance(blue)[0] > 3 * domain.threshold
    assert domain.check(ds.images[150]) == [] and "colours are unlike" in domain.check(blue[0])[0]
    again = dl.InputDomain.from_dict(domain.to_dict())
    np.testing.assert_array_equal(again.distance(ds.images[150:]), held_out)
    assert again.describe() == "clinical photos (synthetic)"
    with pytest.raises(ValueError, match="features"):
        dl.InputDomain.from_dict({**domain.to_dict(), "features": ["mean_r"]})
    with pytest.raises(ValueError, match="modality must be None or one of"):
        dl.InputDomain.fit(ds.images, modality="xray")
    with pytest.raises(ValueError, match="at least 20 training images"):
        dl.InputDomain.fit(ds.images[:5])


def _clinical_model(tmp_path, monkeypatch):
    from tests.helpers import image_folder

    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    imgs = image_folder(tmp_path, n=60)
    out = tmp_path / "out"
    assert main(["train", "--data", str(imgs), "--modality", "clinical", "--arch", "simple_cnn", "--size", "32", "--bs", "16",
                 "--cycles", "1", "--lr", "1e-3", "--out", str(out), "--no-bar"]) == 0  # fmt: skip
    return imgs, out / "model.pth"


def test_dermoscopy_image_given_to_a_clinical_model_is_flagged(tmp_path, monkeypatch, capsys):
    """A model trained on clinical photos classified dermoscopy images without a word."""
    isic = require_data("isic-dermoscopy", "ISIC_0012221.jpg")
    imgs, model = _clinical_model(tmp_path, monkeypatch)
    learn = dl.load_learner(model)
    assert learn.meta["input_domain"]["modality"] == "clinical"
    assert learn.input_domain.n == len(dl.DermData.from_folder(imgs).indices("train"))
    own = sorted(imgs.rglob("*.png"))[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", dl.OutOfDomainWarning)
        learn.predict(own)  # one of its own kind: no warning
    with pytest.warns(dl.OutOfDomainWarning, match="ISIC_0012221.jpg looks out of the model's training domain .*dermoscope's field"):
        learn.predict(isic)
    capsys.readouterr()
    assert main(["predict", "--model", str(model), str(own), str(isic)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len([e for e in err if "dermoscope's field" in e]) == 1 and err[-1].startswith(f"{isic}: warning: out of the model's")
    assert not [e for e in err if str(own) in e]


def test_model_without_known_modality_checks_colours_only(tmp_path):
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    dls = dl.synthetic_dataloaders(n=60, size=32, n_classes=3, bs=10, seed=0)
    plain = DataLoader(TensorDataset(dls.train.dataset.images, dls.train.dataset.labels), batch_size=10)
    learn = dl.Learner((plain, None), dl.create_model("simple_cnn", 3), progress=False, device="cpu")
    path = learn.export(tmp_path / "m.pth", input_size=32)  # a loader without stored images: no domain
    assert dl.load_learner(path).input_domain is None
    learn = dl.Learner(dls, learn.model, progress=False, device="cpu")  # the synthetic images are stored
    loaded = dl.load_learner(learn.export(tmp_path / "m2.pth"))
    assert loaded.input_domain.modality is None and loaded.input_domain.n == len(dls.train.dataset)
    photo = Image.new("RGB", (64, 64), (0, 0, 220))
    with pytest.warns(dl.OutOfDomainWarning, match="the image looks out of the model's training domain \\(images\\)"):
        loaded.predict(photo)
    with warnings.catch_warnings():
        warnings.simplefilter("error", dl.OutOfDomainWarning)
        loaded.predict(photo, check_domain=False)


def test_photo_thumbnail_leaves_the_callers_photo_alone():
    from dermlearn.data.domain import photo_thumbnail

    photo = Image.new("RGB", (1200, 800), (10, 20, 30))
    thumb = photo_thumbnail(photo)
    assert thumb.shape == (3, 341, 512) and thumb.dtype == torch.uint8 and photo.size == (1200, 800)
