"""Losses against float64 recomputations."""


from __future__ import annotations

import pytest
import torch

import dermlearn as dl


def _data(seed=0, n=200, c=5):
    g = torch.Generator().manual_seed(seed)
    preds = torch.randn(n, c, generator=g)
    targs = torch.randint(0, c, (n,), generator=g)
    return preds, targs


def test_cross_entropy_label_smoothing_float64():
    preds, targs = _data(1)
    eps = 0.1
    logp = torch.log_softmax(preds.double(), 1)
    q = torch.full_like(logp, eps / 5)
    q[torch.arange(len(targs)), targs] += 1 - eps
    ref = -(q * logp).sum(1)
    loss = dl.CrossEntropy(label_smoothing=eps, reduction="none")(preds, targs)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-6)
    assert float(dl.CrossEntropy(label_smoothing=eps)(preds, targs)) == pytest.approx(float(ref.mean()), rel=1e-5)
    with pytest.raises(ValueError, match="label_smoothing"):
        dl.CrossEntropy(label_smoothing=1.0)


def test_bce_with_logits_one_hot_float64():
    preds, targs = _data(2)
    y = torch.nn.functional.one_hot(targs, 5).double()
    s = torch.sigmoid(preds.double())
    ref = -(y * torch.log(s) + (1 - y) * torch.log(1 - s)).mean(1)
    lf = dl.BCEWithLogitsOneHot(reduction="none")
    torch.testing.assert_close(lf(preds, targs).double(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(lf(preds, y.float()).double(), ref, rtol=1e-5, atol=1e-6)
    assert torch.equal(lf.decodes(lf.activation(preds)), preds.argmax(1))
    with pytest.raises(ValueError, match="does not match"):
        lf(preds, y[:, :3].float())
    with pytest.raises(TypeError, match="integer"):
        lf(preds, targs.float())
