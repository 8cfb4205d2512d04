"""Safe model files: round trip, no code execution, clear errors for damaged files."""


from __future__ import annotations

import importlib.util
import json
import pickle

import pytest
import torch

import dermlearn as dl


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
    from tests.helpers import tiny_learner

    with pytest.raises(TypeError, match="create_model"):
        tiny_learner().export(tmp_path / "x.pth")


def test_corrections_travel_with_the_model(tmp_path):
    from dermlearn.transforms import AdjustGamma, CorrectIllumination, CropVignette, ShadesOfGray
    from tests.helpers import synthetic_folder, vignetted

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
    framed = vignetted(40, [(20, 21, 17)])[0]  # a dermoscope photo: the loaded model crops its vignette too
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
