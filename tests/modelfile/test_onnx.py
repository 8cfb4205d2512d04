"""ONNX export against PyTorch, and its bad arguments."""


from __future__ import annotations

import json
import sys
import warnings

import pytest
import torch

import dermlearn as dl


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
    from dermlearn.modelfile.onnx import split_steps
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
