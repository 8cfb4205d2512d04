"""Mitigation transforms: values against closed forms and references, on real images."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import dermlearn as dl
from dermlearn.data.decode import load_image
from dermlearn.transforms import (
    AdjustGamma,
    CorrectIllumination,
    CropVignette,
    RandomColourCast,
    RandomGamma,
    RandomIllumination,
    ShadesOfGray,
    adjust_gamma,
    auto_gamma,
    correct_illumination,
    crop_boxes,
    crop_vignette,
    detect_vignette,
    estimate_illuminant,
    field_boxes,
    hair_mask,
    illumination_ramp,
    remove_hair,
    roi_box,
    shades_of_gray,
    two_pass_predict,
    vignette_box,
)
from dermlearn.transforms._common import luminance

from .conftest import require_data


def _img(path) -> torch.Tensor:
    return torch.from_numpy(np.array(load_image(path))).permute(2, 0, 1).contiguous()


@pytest.fixture(scope="module")
def pad_images():
    root = require_data("pad-ufes-20", "labels.csv").parent
    table = pd.read_csv(root / "labels.csv").head(12)
    return [(_img(root / p), _img(root / m)[0] > 127) for p, m in zip(table["image"], table["mask"])]


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


def test_batched_equals_per_image_and_uint8_path(pad_images):
    x = torch.stack([im for im, _ in pad_images[:3]])
    for f in (correct_illumination, shades_of_gray, lambda t: adjust_gamma(t, 0.8)):
        batch = f(x)
        assert batch.dtype == torch.uint8
        xf = x.float() / 255
        fb = f(xf)
        for i in range(3):  # float path: same numbers; uint8: at most 1 level at rounding boundaries
            torch.testing.assert_close(fb[i], f(xf[i : i + 1])[0], atol=1e-5, rtol=0)
            d = (batch[i].int() - f(x[i : i + 1])[0].int()).abs()
            assert d.max() <= 1 and (d > 0).float().mean() < 1e-3
        assert (fb.mul(255).round() - batch.float()).abs().max() <= 1
    assert torch.equal(CorrectIllumination()(x), correct_illumination(x)) and torch.equal(ShadesOfGray()(x), shades_of_gray(x))
    ri = RandomIllumination(p=1.0, seed=0)
    params = ri.sample(3)
    assert torch.equal(ri.apply_params(x, params), ri.apply_params(x, params)) and (ri.apply_params(x, params).float().mean() < x.float().mean())


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


# ---------------------------------------------------------------------------- field of view
def test_vignette_detected_within_a_few_pixels():
    s = 400
    yy, xx = np.mgrid[0:s, 0:s]
    for (cx, cy, r) in [(210, 195, 170), (200, 200, 230), (150, 220, 260)]:  # full circle, partial, off-centre partial
        img = np.zeros((s, s, 3), np.uint8)
        img[..., 0], img[..., 1], img[..., 2] = 190, 150, 140
        img[np.hypot(xx + 0.5 - cx, yy + 0.5 - cy) > r] = 12
        c = detect_vignette(torch.from_numpy(img).permute(2, 0, 1))
        assert c is not None and abs(c.cx - cx) < 3 and abs(c.cy - cy) < 3 and abs(c.r - r) < 3, (c, cx, cy, r)
        x0, y0, x1, y1 = vignette_box(c, s, s)
        for px, py in [(x0, y0), (x1, y0), (x0, y1), (x1, y1)]:
            assert math.hypot(px - cx, py - cy) <= r + 1


def test_no_vignette_on_clinical_photos(pad_images):
    assert all(detect_vignette(im) is None for im, _ in pad_images)  # 'auto': dark, then rim



# PAD-UFES-20 photos that fooled earlier versions of the detectors: dark clothing in a corner and
# a shadowed corner (dark path), pen outlines and large lesions near the centre (rim path). Over
# all 770 PAD-UFES-20 photos (images/ and originals/) 'auto' now finds no vignette.
HARD_NEGATIVES = ["images/PAT_2017_4164_500.png", "originals/images/PAT_1516_1765_530.jpg", "images/PAT_316_1457_353.png",
                  "images/PAT_1526_1792_482.png", "images/PAT_63_99_736.png", "images/PAT_69_1053_540.png",
                  "images/PAT_816_1544_933.png", "images/PAT_633_1199_218.png"]  # fmt: skip


@pytest.mark.parametrize("name", HARD_NEGATIVES)
def test_no_vignette_on_hard_clinical_photos(name):
    assert detect_vignette(_img(require_data("pad-ufes-20", name))) is None


# The plate edge of both ISIC images, measured at full resolution: the luminance minimum of
# the rim's dark line along 135 / 140 rays at 0.25 degree steps, fitted by least squares
# (median residual 0.6 / 0.5 px), and checked by eye on the four corners. The same
# dermoscope took both. The field of skin ends a little inside that line: the pale band
# between them is 0-30 px wide, widest at the top left.
ISIC_PLATE_EDGE = {"ISIC_0012221.jpg": (1521.8, 920.8, 1671.0), "ISIC_0012222.jpg": (1513.8, 913.1, 1669.8)}


@pytest.mark.parametrize("name", sorted(ISIC_PLATE_EDGE))
def test_pale_dermoscope_rim_found_on_isic(name):
    img = _img(require_data("isic-dermoscopy", name))
    assert detect_vignette(img, method="dark") is None  # no luminance step: the dark detector rightly declines
    c = detect_vignette(img)  # 'auto' falls back to the rim detector
    tx, ty, tr = ISIC_PLATE_EDGE[name]
    w = img.shape[-1]
    assert c is not None and c.source == "rim"
    # centre within 1.5% of the width (45 px of 3008; 3 px at the 192 px search size) of the
    # plate's (measured: 8-31 px; the field edge is not quite concentric with the plate), radius
    # inside it (the field edge, not the plastic)
    assert abs(c.cx - tx) < 0.015 * w and abs(c.cy - ty) < 0.015 * w, c
    assert -0.015 * w < c.r - tr < 0, c
    # every point of the found circle that lies in the image is inside the plate's dark line (about
    # 20 px wide; the reference is its middle) and within 2% of the width of it (measured: from
    # 53 px inside, at the top left of ISIC_0012221, to 7 px into the line)
    t = np.linspace(0, 2 * np.pi, 3600, endpoint=False)
    xs, ys = c.cx + c.r * np.cos(t), c.cy + c.r * np.sin(t)
    inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < img.shape[-2])
    gap = np.hypot(xs[inside] - tx, ys[inside] - ty) - tr
    assert inside.sum() > 100 and gap.max() <= 10 and gap.min() > -0.02 * w, (gap.min(), gap.max())
    x0, y0, x1, y1 = vignette_box(c, img.shape[-2], w)
    for px, py in [(x0, y0), (x1, y0), (x0, y1), (x1, y1)]:  # the crop holds no plastic
        assert math.hypot(px - tx, py - ty) <= tr


def test_rim_detector_on_synthetic_vignettes_and_bad_input():
    s = 400
    yy, xx = np.mgrid[0:s, 0:s]
    for cx, cy, r, outside in [(210, 195, 170, 12), (190, 215, 260, 12), (200, 205, 230, (170, 168, 166))]:
        img = np.zeros((s, s, 3), np.uint8)
        img[...] = (190, 150, 140)
        img[np.hypot(xx + 0.5 - cx, yy + 0.5 - cy) > r] = outside  # black vignette, or a pale grey rim
        c = detect_vignette(torch.from_numpy(img).permute(2, 0, 1), method="rim")
        assert c is not None and abs(c.cx - cx) < 3 and abs(c.cy - cy) < 3 and abs(c.r - r) < 3, (c, cx, cy, r)
    flat = torch.full((3, 64, 64), 128, dtype=torch.uint8)
    assert detect_vignette(flat, method="rim") is None
    with pytest.raises(ValueError, match="method must be 'auto', 'dark' or 'rim'"):
        detect_vignette(flat, method="hough")


def test_value_checks_run_eagerly_and_on_old_torch(monkeypatch):
    """The checks skipped while tracing still run in eager code, also on torch 2.1-2.2, which
    has no ``torch.compiler.is_compiling`` (setup.cfg allows them)."""
    from dermlearn.transforms._common import tracing

    bad = torch.full((1, 3, 8, 8), 2.0)
    for old_torch in (False, True):
        if old_torch:  # torch 2.1-2.2: only torch._dynamo.is_compiling, a function of its own
            monkeypatch.delattr(torch.compiler, "is_compiling")
            monkeypatch.setattr(torch._dynamo, "is_compiling", lambda: False)
        assert tracing() is False
        with pytest.raises(ValueError, match=r"float images in \[0, 1\]"):
            correct_illumination(bad)
        with pytest.raises(ValueError, match="gamma must be > 0"):
            adjust_gamma(torch.rand(1, 3, 8, 8), torch.tensor([-1.0]))


def _vignetted(s: int, fields, w: int | None = None, seed: int = 0) -> Tensor:
    """Skin-coloured noisy images ``(B, 3, s, w)`` with black outside each circle (None: no vignette)."""
    w = w or s
    yy, xx = np.mgrid[0:s, 0:w]
    rng = np.random.default_rng(seed)
    out = []
    for field in fields:
        img = np.clip(np.array([190, 150, 140]) + rng.normal(0, 8, (s, w, 3)), 0, 255).astype(np.uint8)
        if field is not None:
            cx, cy, r = field
            img[np.hypot(xx + 0.5 - cx, yy + 0.5 - cy) > r] = 12
        out.append(torch.from_numpy(img).permute(2, 0, 1))
    return torch.stack(out)


def test_crop_vignette_keeps_the_field_and_passes_other_images(monkeypatch):
    """Full, partial and off-centre vignettes on 160 px items: the box has the image's aspect,
    all of it lies in the field (the true circle), it keeps most of what fits, and the crop has
    no black left; an image without a vignette is returned bit for bit."""
    fields = [(84, 78, 68), (80, 80, 92), (60, 88, 104), None]
    x = _vignetted(160, fields)
    boxes = field_boxes(x)
    assert boxes[3] is None
    for (cx, cy, r), (x0, y0, x1, y1) in zip(fields[:3], boxes[:3]):
        assert 0 <= x0 < x1 <= 160 and 0 <= y0 < y1 <= 160
        assert abs((x1 - x0) - (y1 - y0)) < 1e-6  # square images: square boxes
        assert all(math.hypot(px - cx, py - cy) <= r + 1 for px in (x0, x1) for py in (y0, y1))
    # the full circle keeps its inscribed square (0.98 of the radius, detection within 3 px)
    assert abs((boxes[0][2] - boxes[0][0]) - 2 * 68 * 0.98 / math.sqrt(2)) < 5
    y = crop_vignette(x)
    assert y.shape == x.shape and y.dtype == torch.uint8
    black = lambda im: float((im < 40).all(0).float().mean())  # noqa: E731
    assert all(black(im) > 0.05 for im in x[:3]) and all(black(im) == 0 for im in y[:3])
    assert torch.equal(y[3], x[3])
    torch.testing.assert_close(y[:3], crop_boxes(x[:3], boxes[:3], 160))
    # float in [0, 1] gives the same, to rounding; the module is the function
    torch.testing.assert_close(crop_vignette(x.float() / 255), y.float() / 255, atol=1 / 255 + 1e-6, rtol=0)
    assert torch.equal(CropVignette()(x), y)
    # the module remembers each stored image's box: a second epoch detects nothing again
    import dermlearn.transforms.fov as fov

    calls = []
    monkeypatch.setattr(fov, "detect_vignette", lambda img, method: calls.append(1) or detect_vignette(img, method=method))
    step = CropVignette()
    assert torch.equal(step(x), y) and len(calls) == 4
    assert torch.equal(step(x[[2, 0]]), y[[2, 0]]) and len(calls) == 4
    changed = x.clone()
    changed[0, :, 80, 80] += 1  # another image: detected afresh
    step(changed)
    assert len(calls) == 5 and step.state_dict() == {}  # the memory is not model state
    half = (x.float() / 255).to(torch.bfloat16)
    assert torch.equal(step(half), crop_vignette(half))  # any dtype hashes
    # a wide image gets a box of its own aspect (w / h = 1.5)
    wide = _vignetted(120, [(90, 60, 80)], w=180)
    (x0, y0, x1, y1), = field_boxes(wide)
    assert abs((x1 - x0) / (y1 - y0) - 1.5) < 1e-6 and crop_vignette(wide).shape == wide.shape
    flat = torch.full((2, 3, 64, 64), 128, dtype=torch.uint8)
    assert crop_vignette(flat) is flat  # nothing found: not even copied
    with pytest.raises(ValueError, match="method must be"):
        CropVignette(method="hough")
    with pytest.raises(ValueError, match=r"shrink must be in \(0, 1\]"):
        crop_vignette(x, shrink=0)
    with pytest.raises(ValueError, match=r"field_boxes expects images \(B, 3, H, W\)"):
        crop_vignette(x[0])


def test_crop_vignette_leaves_clinical_photos_alone(pad_images):
    x = torch.stack([F.interpolate(im[None].float(), size=(128, 128), mode="area")[0].round().to(torch.uint8) for im, _ in pad_images])
    assert torch.equal(CropVignette()(x), x)


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


def test_two_pass_predict_combines_full_view_and_crop():
    dls = dl.synthetic_dataloaders(n=120, size=48, n_classes=3, bs=16, seed=0)
    torch.manual_seed(0)
    learn = dl.Learner(dls, dl.create_model("simple_cnn", 3), progress=False, device="cpu")
    learn.fit(3, lr=1e-2)  # trained enough that Grad-CAM is not zero (a zero map crops nothing)
    item = dls.valid.dataset[0][0]
    probs, first, second, box = two_pass_predict(learn, item, mode="average")
    torch.testing.assert_close(probs, (first + second) / 2)
    torch.testing.assert_close(first, learn.predict(item)[2])
    assert box != (0, 0, 48, 48)  # a real crop, in item pixels
    crop = crop_boxes(item[None], [box], 48)[0]
    torch.testing.assert_close(second, learn.predict(crop)[2])
    assert torch.equal(two_pass_predict(learn, item, mode="replace")[0], second)
    with pytest.raises(ValueError, match="mode"):
        two_pass_predict(learn, item, mode="max")
    # region='peak': the box roi_box draws around the peak's region of the same Grad-CAM map
    cam = learn.explain(item, targets=("top1",), gbp=False).gradcam["top1"].maps[0]
    cam = F.interpolate(cam[None, None], size=(48, 48), mode="bilinear", align_corners=False)[0, 0]
    peak_box = two_pass_predict(learn, item, region="peak")[3]
    assert peak_box == roi_box(cam, 0.5, 0.15, region="peak")
    assert box == roi_box(cam, 0.5, 0.15, region="all")
    with pytest.raises(ValueError, match="region"):
        two_pass_predict(learn, item, region="largest")


def test_two_pass_predict_crops_the_full_resolution_source():
    """With ``source`` the box is mapped to the photo's pixels and the crop is cut there:
    a 300x240 photo presized to 48 px is its centre 240 square at 1/5, so item pixel x is
    photo pixel 30 + 5x."""
    from PIL import Image

    from dermlearn.data.decode import presize_image

    dls = dl.synthetic_dataloaders(n=120, size=48, n_classes=3, bs=16, seed=0)
    torch.manual_seed(0)
    learn = dl.Learner(dls, dl.create_model("simple_cnn", 3), progress=False, device="cpu")
    learn.fit(3, lr=1e-2)  # trained enough that Grad-CAM is not zero (a zero map crops nothing)
    g = torch.Generator().manual_seed(1)
    for i in range(len(dls.valid.dataset)):  # the first image whose Grad-CAM box is a real crop
        centre = F.interpolate(dls.valid.dataset[i][0][None].float(), scale_factor=5, mode="bilinear")[0]
        photo = torch.randint(0, 256, (3, 240, 300), generator=g).float()
        photo[:, :, 30:270] = centre  # noise beside the centre square, which presize_image drops
        photo = photo.round().clamp(0, 255).to(torch.uint8)
        source = Image.fromarray(photo.permute(1, 2, 0).numpy())
        item = presize_image(source, 48)
        _, first0, _, (x0, y0, x1, y1) = two_pass_predict(learn, item)
        if x1 - x0 < 40:
            break
    probs, first, second, box = two_pass_predict(learn, item, source=source)
    assert x1 - x0 < 40 and box == (30 + 5 * x0, 5 * y0, 30 + 5 * x1, 5 * y1)
    torch.testing.assert_close(first, first0)
    torch.testing.assert_close(second, learn.predict(presize_image(source.crop(box), 48))[2])
    torch.testing.assert_close(probs, (first + second) / 2)
    # a tensor source (uint8 or float in [0, 1]) is the same photo
    for t in (photo, photo.float() / 255):
        torch.testing.assert_close(two_pass_predict(learn, item, source=t)[0], probs)
    # a float item gets a float crop, and the same answer
    again = two_pass_predict(learn, item.float() / 255, source=source)[0]
    torch.testing.assert_close(again, probs, atol=1e-5, rtol=0)
    with pytest.raises(TypeError, match="source must be a PIL image"):
        two_pass_predict(learn, item, source="photo.jpg")
    with pytest.raises(ValueError, match=r"source must be one image \(3, H, W\)"):
        two_pass_predict(learn, item, source=photo[None])
    with pytest.raises(ValueError, match=r"source.*\[0, 1\]"):
        two_pass_predict(learn, item, source=photo.float())
    with pytest.raises(ValueError, match="square"):
        two_pass_predict(learn, item[:, :, :40], source=source)


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


def test_degradation_is_seeded():
    from dermlearn.experiments.photometric import degrade

    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(degrade(x, 1), degrade(x, 1)) and not torch.equal(degrade(x, 1), degrade(x, 2))


def test_random_transforms_keep_module_apply():
    """``nn.Module.apply(fn)`` recurses into children; the random transforms must not shadow it."""
    from dermlearn.data.augment import BatchAugment

    seq = torch.nn.Sequential(RandomGamma(seed=0), RandomIllumination(seed=0), RandomColourCast(seed=0), BatchAugment(8, seed=0))
    seen = []
    assert seq.apply(seen.append) is seq
    assert len(seen) == 5  # the four transforms and the Sequential


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
