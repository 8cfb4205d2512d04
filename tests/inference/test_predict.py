"""predict on image files and PIL images."""


from __future__ import annotations

import numpy as np
import pytest
import torch

import dermlearn as dl


def test_predict_reads_image_files_and_pil_images(trained, tmp_path):
    """A photo file or PIL image is decoded as the data pipeline decodes files: upright (EXIF),
    shorter side to the input size, centre square."""
    from PIL import Image

    from dermlearn.data.decode import UnreadableImage, load_image
    from dermlearn.inference import two_pass_predict

    learn = dl.load_learner(trained.export(tmp_path / "m.pth"), device="cpu")
    assert trained.input_size == learn.input_size == 32
    rng = np.random.default_rng(0)
    upright = Image.fromarray(rng.integers(0, 256, (60, 90, 3), dtype=np.uint8))  # 90 wide, 60 high
    upright.save(tmp_path / "up.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: store it rotated the other way
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "rot.png", exif=exif)
    # by hand: 60 -> 32 rows, 90 -> 48 columns, the centre 32 columns kept
    ref = upright.resize((48, 32), Image.BILINEAR).crop((8, 0, 40, 32))
    ref_item = torch.from_numpy(np.asarray(ref).copy()).permute(2, 0, 1)
    want = learn.predict(ref_item)
    for item in (tmp_path / "up.png", str(tmp_path / "rot.png"), Image.open(tmp_path / "rot.png"), upright):
        got = learn.predict(item)
        assert got[:2] == want[:2]
        torch.testing.assert_close(got[2], want[2], rtol=0, atol=0)
    assert torch.equal(learn.load_item(tmp_path / "rot.png"), ref_item)
    # explanations of files: one, or a list, as of the decoded tensors
    ex, ex_ref = learn.explain([tmp_path / "rot.png", upright], gbp=False), learn.explain(torch.stack([ref_item] * 2), gbp=False)
    torch.testing.assert_close(ex.probs, ex_ref.probs, rtol=0, atol=0)
    torch.testing.assert_close(ex.gradcam["top1"].maps, ex_ref.gradcam["top1"].maps, rtol=0, atol=0)
    torch.testing.assert_close(learn.explain(tmp_path / "up.png", gbp=False).probs, ex_ref.probs[:1], rtol=0, atol=0)
    with pytest.raises(ValueError, match="empty list"):
        learn.explain([])
    # two-pass from a file: the first pass as above, the crop cut from the full-resolution photo
    probs, first, second, box = two_pass_predict(learn, tmp_path / "rot.png")
    torch.testing.assert_close(first, want[2], rtol=0, atol=0)
    again = two_pass_predict(learn, ref_item, source=load_image(tmp_path / "rot.png"))
    assert again[3] == box and 15 <= box[0] < box[2] <= 75 and 0 <= box[1] < box[3] <= 60
    torch.testing.assert_close(again[0], probs, rtol=0, atol=0)
    with pytest.raises(ValueError, match="pass source only with an item tensor"):
        two_pass_predict(learn, tmp_path / "up.png", source=upright)
    with pytest.raises(UnreadableImage, match=r"missing\.jpg: file not found"):
        learn.predict(tmp_path / "missing.jpg")
    with pytest.raises(ValueError, match="an image file or a PIL image"):
        learn.predict(np.asarray(upright))
    blind = dl.Learner(dl.DataLoaders([], None), dl.create_model("simple_cnn", 3), progress=False, device="cpu")
    assert blind.input_size is None
    with pytest.raises(ValueError, match="needs the model's input size"):
        blind.predict(upright)
