"""Metrics and losses against hand computations in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dermlearn as dl


def _data(seed=0, n=200, c=5):
    g = torch.Generator().manual_seed(seed)
    preds = torch.randn(n, c, generator=g)
    targs = torch.randint(0, c, (n,), generator=g)
    return preds, targs


def test_confusion_and_metrics_by_hand():
    preds, targs = _data()
    p, t = preds.argmax(1).numpy(), targs.numpy()
    cm = np.zeros((5, 5), dtype=np.int64)
    for a, b in zip(t, p):
        cm[a, b] += 1
    assert np.array_equal(dl.confusion_matrix(preds, targs).numpy(), cm)
    assert float(dl.accuracy(preds, targs)) == pytest.approx((p == t).mean())
    recall = np.diag(cm) / cm.sum(1)
    np.testing.assert_allclose(dl.per_class_recall(preds, targs).numpy(), recall, rtol=1e-6)
    assert float(dl.balanced_accuracy(preds, targs)) == pytest.approx(recall.mean(), rel=1e-6)
    prec = np.diag(cm) / cm.sum(0)
    f1 = 2 * prec * recall / (prec + recall)
    assert float(dl.macro_f1(preds, targs)) == pytest.approx(f1.mean(), rel=1e-6)
    top3 = np.argsort(-preds.numpy(), 1)[:, :3]
    assert float(dl.top_k_accuracy(preds, targs, 3)) == pytest.approx(np.mean([t[i] in top3[i] for i in range(len(t))]))
    assert dl.TopK(3).__name__ == "top_3_accuracy"
    # one-hot targets give the same numbers
    oh = torch.nn.functional.one_hot(targs, 5).float()
    assert float(dl.balanced_accuracy(preds, oh)) == float(dl.balanced_accuracy(preds, targs))


def test_balanced_accuracy_ignores_absent_classes_and_differs_from_accuracy():
    targs = torch.tensor([0, 0, 0, 0, 1])
    preds = torch.nn.functional.one_hot(torch.tensor([0, 0, 0, 0, 0]), 3).float()
    assert float(dl.accuracy(preds, targs)) == pytest.approx(0.8)
    assert float(dl.balanced_accuracy(preds, targs)) == pytest.approx(0.5)


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
