"""Crop and re-predict: two_pass_predict."""


from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import dermlearn as dl
from dermlearn.inference import two_pass_predict
from dermlearn.transforms import crop_boxes, roi_box


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
