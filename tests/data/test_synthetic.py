"""The synthetic lesion generator: seeded, balanced, class-distinct, confounders work."""

from __future__ import annotations

import pytest
import torch

import dermlearn as dl


def test_seeded_and_balanced():
    a = dl.make_lesions(n=100, size=32, seed=3)
    b = dl.make_lesions(n=100, size=32, seed=3)
    c = dl.make_lesions(n=100, size=32, seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert a.images.dtype == torch.uint8 and a.images.shape == (100, 3, 32, 32)
    assert torch.bincount(a.labels).tolist() == [20] * 5
    assert a.classes == list(dl.LESION_CLASSES) and len(a) == 100
    x, y = a[0]
    assert x.shape == (3, 32, 32) and int(y) == int(a.labels[0])


def test_classes_differ_in_colour_inside_the_mask():
    ds = dl.make_lesions(n=250, size=48, seed=0)
    img = ds.images.float() / 255
    mean_rgb = torch.stack([(img[i][:, ds.masks[i]]).mean(1) for i in range(len(ds))])
    per_class = torch.stack([mean_rgb[ds.labels == k].mean(0) for k in range(5)])
    assert per_class[0].sum() < per_class[4].sum()  # brown macula darker than leukoderma
    assert per_class[2][0] - per_class[2][1] > 0.15  # ulcer rim is red
    coverage = ds.masks.float().mean((1, 2))
    assert (coverage > 0.02).all() and (coverage < 0.6).all()


def test_confounders():
    plain = dl.make_lesions(n=60, size=48, seed=1)
    fov = dl.make_lesions(n=60, size=48, seed=1, confounders=("fov",), confound_p=1.0)
    assert fov.masks.float().mean() < plain.masks.float().mean() / 3
    ill = dl.make_lesions(n=60, size=48, seed=1, confounders=("illumination",), confound_p=1.0)
    assert all(m["illumination"] is not None for m in ill.meta)
    assert ill.images.float().mean() < plain.images.float().mean()
    g = dl.make_lesions(n=60, size=48, seed=1, confounders=("gamma", "cast"), confound_p=0.5)
    n_gamma = sum(m["gamma"] is not None for m in g.meta)
    assert 10 < n_gamma < 50


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_classes"):
        dl.make_lesions(n_classes=9)
    with pytest.raises(ValueError, match="unknown confounders"):
        dl.make_lesions(confounders=("blur",))
    with pytest.raises(ValueError, match="size"):
        dl.make_lesions(size=8)
    with pytest.raises(ValueError, match="valid_pct"):
        dl.synthetic_dataloaders(valid_pct=1.5)


def test_normalize_and_decode():
    norm = dl.Normalize()
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    y = norm(x)
    mean = torch.tensor(dl.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(dl.IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(y, (x.double() / 255 - mean.double()).div(std.double()).float())
    torch.testing.assert_close(norm.decode(y), x.float() / 255)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        norm(torch.zeros(3, 8, 8))
