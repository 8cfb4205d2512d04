"""Safe model files: round trip, no code execution, clear errors for damaged files."""

from __future__ import annotations

import importlib.util
import json
import pickle
import sys
import warnings

import numpy as np
import pytest
import torch

import dermlearn as dl


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    from .test_data import synthetic_folder

    synthetic_folder(root, n=60, size=40, n_classes=3)
    data = dl.DermData.from_folder(root)
    dls = data.dls(bs=16, size=32, progress=False, cache_dir=False)
    torch.manual_seed(0)
    learn = dl.Learner(dls, dl.create_model("simple_cnn", 3), loss_func=dl.BCEWithLogitsOneHot(), progress=False, device="cpu")
    learn.fit(1, lr=3e-3)
    return learn


def test_export_round_trip_gives_identical_predictions(trained, tmp_path):
    path = trained.export(tmp_path / "m.pth", extra={"note": "test"})
    assert [p.name for p in tmp_path.iterdir()] == ["m.pth"]
    learn = dl.load_learner(path, device="cpu")
    assert learn.meta["classes"] == trained.dls.vocab and learn.meta["activation"] == "normalized_sigmoid"
    assert learn.meta["input_size"] == 32 and learn.meta["extra"] == {"note": "test"}
    assert [s["name"] for s in learn.meta["preprocessing"]] == ["resize", "normalize"]
    p1, _ = trained.get_preds()
    p2, _ = learn.get_preds(dl=trained.dls.valid)
    torch.testing.assert_close(p1, p2, rtol=0, atol=0)
    item = trained.dls.valid.dataset[0][0]
    assert trained.predict(item)[0] == learn.predict(item)[0]
    # a raw 40 px item is resized by the stored preprocessing exactly as in training
    torch.testing.assert_close(trained.predict(item)[2], learn.predict(item)[2])


def test_damaged_files_are_clear_errors(trained, tmp_path):
    path = trained.export(tmp_path / "m.pth")
    data = path.read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="trunc.pth"):
        dl.load_learner(tmp_path / "trunc.pth")
    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"format": "dermlearn-export"}))
    with pytest.raises(ValueError, match="evil.pth"):
        dl.load_learner(tmp_path / "evil.pth")
    state = torch.load(path, weights_only=True)
    meta = json.loads(state["meta"])
    meta["n_out"] = 5
    meta["classes"] = ["a", "b", "c", "d", "e"]
    state["meta"] = json.dumps(meta)
    torch.save(state, tmp_path / "mismatch.pth")
    with pytest.raises(ValueError, match="do not fit simple_cnn with 5 outputs"):
        dl.load_learner(tmp_path / "mismatch.pth")
    state["meta"] = "{not json"
    torch.save(state, tmp_path / "meta.pth")
    with pytest.raises(ValueError, match="damaged metadata"):
        dl.load_learner(tmp_path / "meta.pth")
    trained.save(tmp_path / "plain.pth")
    with pytest.raises(ValueError, match="not a dermlearn export"):
        dl.load_learner(tmp_path / "plain.pth")
    with pytest.raises(FileNotFoundError):
        dl.load_learner(tmp_path / "missing.pth")


def test_export_refuses_models_it_cannot_rebuild(tmp_path):
    from .conftest import tiny_learner

    with pytest.raises(TypeError, match="create_model"):
        tiny_learner().export(tmp_path / "x.pth")


def test_corrections_travel_with_the_model(tmp_path):
    from dermlearn.transforms import AdjustGamma, CorrectIllumination, CropVignette, ShadesOfGray

    from .test_data import synthetic_folder
    from .test_transforms import _vignetted

    synthetic_folder(tmp_path / "imgs", n=45, size=40, n_classes=3)
    data = dl.DermData.from_folder(tmp_path / "imgs")
    tfms = [CropVignette(method="auto", shrink=0.9), CorrectIllumination(kernel_frac=0.3), ShadesOfGray(p=4), AdjustGamma(0.8)]
    dls = data.dls(bs=8, size=32, progress=False, cache_dir=False, tfms=tfms)
    x, _ = next(iter(dls.valid))
    ref = AdjustGamma(0.8)(ShadesOfGray(p=4)(CorrectIllumination(kernel_frac=0.3)(CropVignette("auto", 0.9)(x))))
    torch.testing.assert_close(dls.apply(x, training=False), dls.batch_tfms[-1](dls.batch_tfms[-2](ref)))
    learn = dl.Learner(dls, dl.create_model("simple_cnn", 3), progress=False, device="cpu")
    path = learn.export(tmp_path / "m.pth")
    back = dl.load_learner(path)
    names = [s["name"] for s in back.meta["preprocessing"]]
    assert names == ["CropVignette", "CorrectIllumination", "ShadesOfGray", "AdjustGamma", "resize", "normalize"]
    assert back.meta["preprocessing"][0] == {"name": "CropVignette", "method": "auto", "shrink": 0.9}
    assert back.meta["preprocessing"][1]["kernel_frac"] == 0.3 and back.meta["preprocessing"][2]["p"] == 4
    item = dls.valid.dataset[0][0]
    torch.testing.assert_close(back.predict(item)[2], learn.predict(item)[2])
    framed = _vignetted(40, [(20, 21, 17)])[0]  # a dermoscope photo: the loaded model crops its vignette too
    torch.testing.assert_close(back.predict(framed)[2], learn.predict(framed)[2])
    assert not torch.equal(back.dls.batch_tfms[0](framed[None]), framed[None])  # it was cropped
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnxscript") is None:
        return  # the onnx extra is not installed
    import onnxruntime as ort

    # ONNX holds the illumination, colour and gamma corrections, not the OpenCV vignette crop before them
    with pytest.warns(UserWarning, match=r"leaves out the corrections CropVignette\(method='auto', shrink=0.9\): apply"):
        onnx_path = back.export_onnx(tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(onnx_path))
    props = sess.get_modelmeta().custom_metadata_map
    assert json.loads(props["dermlearn.outside_graph"]) == ["CropVignette(method='auto', shrink=0.9)"]
    items = torch.stack([framed, *[dls.valid.dataset[i][0] for i in range(3)]])
    items = torch.nn.functional.interpolate(items.float(), size=(32, 32), mode="area").round().to(torch.uint8)
    out = sess.run(None, {"images": back.dls.batch_tfms[0](items).numpy()})[0]  # the crop, then the graph
    ref = torch.stack([back.predict(item)[2] for item in items])
    torch.testing.assert_close(torch.from_numpy(out), ref, atol=1e-5, rtol=1e-4)
    one = sess.run(None, {"images": back.dls.batch_tfms[0](items[1:2]).numpy()})[0]  # per-image gammas at batch 1
    torch.testing.assert_close(torch.from_numpy(one), ref[1:2], atol=1e-5, rtol=1e-4)
    # the old exporter keeps only the resize and the normalisation
    with pytest.warns(UserWarning, match=r"CropVignette.*CorrectIllumination.*ShadesOfGray.*AdjustGamma"):
        back.export_onnx(tmp_path / "m2.onnx", exporter="torchscript")


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_onnx_export_matches_pytorch(trained, tmp_path, exporter):
    ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    if exporter == "dynamo":
        pytest.importorskip("onnxscript", reason="the onnx extra is not installed")
    trained.model.train()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = trained.export_onnx(tmp_path / "m.onnx", exporter=exporter)
    assert trained.model.training and next(trained.model.parameters()).device.type == "cpu"  # left as it was
    if exporter == "dynamo":  # the default is the exporter PyTorch keeps, not the one it deprecates
        assert not [w for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))], [str(w.message) for w in caught]
    sess = ort.InferenceSession(str(path))
    x, _ = next(iter(trained.dls.valid))
    x32 = torch.nn.functional.interpolate(x.float(), size=(32, 32), mode="bilinear", antialias=True, align_corners=False).round().clamp(0, 255).to(torch.uint8)
    # the learner uses single-label BCE: sigmoid scores normalised to sum 1, as get_preds reports
    from dermlearn.losses import normalized_sigmoid

    ref = normalized_sigmoid(trained.model.eval()(trained.dls.apply(x32, training=False))).detach()
    torch.testing.assert_close(ref.sum(1), torch.ones(len(ref)))
    for batch in (x32, x32[:1]):  # the batch size is free, 1 included (the trace used 2)
        out = torch.from_numpy(sess.run(None, {"images": batch.numpy()})[0])
        torch.testing.assert_close(out, ref[: len(batch)], atol=1e-5, rtol=1e-4)
    assert sess.get_inputs()[0].shape[0] == "batch" and sess.get_outputs()[0].shape[0] == "batch"
    props = sess.get_modelmeta().custom_metadata_map  # the file says what it classifies and what it leaves out
    assert json.loads(props["dermlearn.classes"]) == trained.dls.vocab and props["dermlearn.input_size"] == "32"
    assert json.loads(props["dermlearn.outside_graph"]) == [] and not [w for w in caught if "leaves out" in str(w.message)]


def test_onnx_export_bad_arguments(trained, tmp_path, monkeypatch):
    pytest.importorskip("onnx", reason="the onnx extra is not installed")
    with pytest.raises(ValueError, match="exporter must be one of"):
        trained.export_onnx(tmp_path / "m.onnx", exporter="jit")
    from dermlearn.onnx_export import split_steps
    from dermlearn.transforms import AdjustGamma, CropVignette, RemoveHair

    steps = [RemoveHair(), AdjustGamma(0.8), CropVignette(), AdjustGamma(0.9), dl.Normalize()]
    assert split_steps(steps) == (steps[:3], steps[3:])  # the last OpenCV step and all before it stay outside
    assert split_steps(steps, "torchscript") == (steps[:4], steps[4:])
    with pytest.raises(ValueError, match=r"Normalize\(mean=.*\) comes before CropVignette"):
        split_steps([dl.Normalize(), CropVignette()])
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"dermlearn\[onnx\].*onnxscript is missing"):
        trained.export_onnx(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_predict_reads_image_files_and_pil_images(trained, tmp_path):
    """A photo file or PIL image is decoded as the data pipeline decodes files: upright (EXIF),
    shorter side to the input size, centre square."""
    from PIL import Image

    from dermlearn.data.decode import UnreadableImage, load_image
    from dermlearn.transforms import two_pass_predict

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


def test_activation_travels_with_the_model_file(trained, tmp_path):
    """A single-label BCE model file reports normalised class probabilities, a multi-label
    one its raw sigmoids; files of format version 1 ('sigmoid' for every BCE model, all of
    them single-label) load as single-label."""
    item = trained.dls.valid.dataset[0][0]
    want = trained.predict(item)[2]
    assert float(want.sum()) == pytest.approx(1.0)
    path = trained.export(tmp_path / "m.pth")
    torch.testing.assert_close(dl.load_learner(path).predict(item)[2], want)
    state = torch.load(path, weights_only=True)
    meta = json.loads(state["meta"])
    torch.save({**state, "meta": json.dumps({**meta, "format_version": 1, "activation": "sigmoid"})}, tmp_path / "v1.pth")
    old = dl.load_learner(tmp_path / "v1.pth")
    assert old.loss_func.activation_name == "normalized_sigmoid"
    torch.testing.assert_close(old.predict(item)[2], want)
    torch.save({**state, "meta": json.dumps({**meta, "activation": "sigmoid"})}, tmp_path / "multi.pth")
    multi = dl.load_learner(tmp_path / "multi.pth")
    assert multi.loss_func.multi_label and float(multi.predict(item)[2].sum()) != pytest.approx(1.0)
    torch.save({**state, "meta": json.dumps({**meta, "activation": "tanh"})}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="bad.pth: damaged metadata \\(activation 'tanh'"):
        dl.load_learner(tmp_path / "bad.pth")
