"""Temperature scaling: the fitted temperature against its definition and a generated truth;
the Learner applies it everywhere probabilities leave it, and nowhere they should not."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import torch.nn.functional as F

import dermlearn as dl
from dermlearn.inference.calibration import fit_temperature, temperature_nll
from tests.helpers import tiny_learner


def _generated(scale: float, n: int = 20000, seed: int = 0):
    """Labels drawn from softmax(base); the model reports base * scale, so T = scale undoes it."""
    g = torch.Generator().manual_seed(seed)
    base = 2 * torch.randn(n, 5, generator=g)
    y = torch.multinomial(base.softmax(1), 1, generator=g).squeeze(1)
    return base * scale, y


@pytest.mark.parametrize("scale", [2.5, 0.5], ids=["overconfident", "underconfident"])
def test_temperature_recovers_the_generating_scale(scale):
    logits, y = _generated(scale)
    assert fit_temperature(logits, y) == pytest.approx(scale, rel=0.03)


@pytest.mark.parametrize("activation", ["softmax", "sigmoid", "normalized_sigmoid"])
def test_temperature_is_the_likelihoods_stationary_point(activation):
    logits, y = _generated(1.7, n=3000, seed=1)
    t = fit_temperature(logits, y, activation=activation)
    tt = torch.tensor(t, dtype=torch.float64, requires_grad=True)
    z = logits.double() / tt
    if activation == "sigmoid":
        nll = F.binary_cross_entropy_with_logits(z, F.one_hot(y, 5).double())
    elif activation == "normalized_sigmoid":  # the NLL of the class probabilities the model reports
        s = torch.sigmoid(z)
        nll = -(s / s.sum(1, keepdim=True)).gather(1, y[:, None]).log().mean()
    else:
        nll = F.cross_entropy(z, y)
    (grad,) = torch.autograd.grad(nll, tt)
    assert abs(float(grad)) < 1e-5  # float64 recomputation of the derivative at the optimum
    nll = float(nll.detach())
    assert nll == pytest.approx(temperature_nll(logits, y, t, activation=activation), rel=1e-12)
    assert all(temperature_nll(logits, y, t * f, activation=activation) > nll for f in (0.98, 1.02))
    if activation == "sigmoid":  # the older flag means the same
        assert fit_temperature(logits, y, sigmoid=True) == t
    with pytest.raises(ValueError, match="activation must be one of"):
        fit_temperature(logits, y, activation="tanh")


def test_fit_temperature_names_bad_inputs():
    with pytest.raises(ValueError, match=r"logits must be \(N, C\)"):
        fit_temperature(torch.randn(10), torch.zeros(10))
    with pytest.raises(ValueError, match="differ in length: 10 and 9"):
        fit_temperature(torch.randn(10, 3), torch.zeros(9, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN or inf"):
        fit_temperature(torch.tensor([[0.0, float("nan")]]), torch.zeros(1, dtype=torch.long))
    with pytest.warns(RuntimeWarning, match="edge of the search range"):  # every item right by a mile
        fit_temperature(torch.tensor([[50.0, -50.0], [-50.0, 50.0]]), torch.tensor([0, 1]))


def test_learner_calibrate_changes_probabilities_not_predictions():
    learn = tiny_learner(metrics=[dl.accuracy, dl.expected_calibration_error])
    learn.fit(12, lr=5e-2)  # blobs overlap: a long fit at a high rate is overconfident
    before, targs = learn.get_preds()
    logits, _ = learn.get_preds(act=lambda z: z)
    t = learn.calibrate()
    assert t == learn.temperature and t == pytest.approx(fit_temperature(logits, targs))
    after, _ = learn.get_preds()
    torch.testing.assert_close(after, torch.softmax(logits / t, 1))
    assert torch.equal(after.argmax(1), before.argmax(1))
    assert temperature_nll(logits, targs, t) < temperature_nll(logits, targs, 1.0)
    res = learn.validate()  # probability metrics see the calibrated probabilities too
    assert res["expected_calibration_error"] == pytest.approx(float(dl.expected_calibration_error(after, targs)), abs=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the range test restores the model, so the calibration stays
        learn.lr_find(num_it=10, show_plot=False)
    assert learn.temperature == t
    with pytest.warns(RuntimeWarning, match="reset to 1"):
        learn.fit(1, lr=1e-3)
    assert learn.temperature == 1.0


def test_temperature_travels_with_the_exported_model(tmp_path):
    from tests.helpers import synthetic_folder

    synthetic_folder(tmp_path / "imgs", n=60, size=40, n_classes=3)
    dls = dl.DermData.from_folder(tmp_path / "imgs").dls(bs=16, size=32, progress=False, cache_dir=False)
    torch.manual_seed(0)
    learn = dl.Learner(dls, dl.create_model("simple_cnn", 3), progress=False, device="cpu")
    learn.fit(2, lr=3e-3)
    learn.calibrate()
    assert learn.temperature != 1.0
    path = learn.export(tmp_path / "m.pth")
    back = dl.load_learner(path, device="cpu")
    assert back.temperature == learn.temperature and back.meta["temperature"] == learn.temperature
    probs = learn.get_preds()[0]
    torch.testing.assert_close(back.get_preds(dl=dls.valid)[0], probs, rtol=0, atol=0)
    torch.testing.assert_close(back.predict(dls.valid.dataset[0][0])[2], probs[0])
    state = torch.load(path, weights_only=True)
    meta = json.loads(state["meta"])
    for bad in (-1.0, 0, "hot"):
        meta["temperature"] = bad
        state["meta"] = json.dumps(meta)
        torch.save(state, tmp_path / "bad.pth")
        with pytest.raises(ValueError, match="bad.pth: damaged metadata \\(temperature"):
            dl.load_learner(tmp_path / "bad.pth")
    ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    sess = ort.InferenceSession(str(learn.export_onnx(tmp_path / "m.onnx")))
    x, _ = next(iter(dls.valid))
    x32 = F.interpolate(x.float(), size=(32, 32), mode="bilinear", antialias=True, align_corners=False).round().clamp(0, 255).to(torch.uint8)
    out = torch.from_numpy(sess.run(None, {"images": x32.numpy()})[0])
    with torch.no_grad():
        ref = torch.softmax(learn.model.eval()(dls.apply(x32, training=False)) / learn.temperature, 1)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
