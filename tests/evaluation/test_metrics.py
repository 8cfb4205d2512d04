"""Metrics by hand, ROC AUC with ties, calibration error, bad inputs."""


from __future__ import annotations

import numpy as np
import pytest
import torch

import dermlearn as dl
from dermlearn.evaluation.metrics import takes_probabilities


def _data(seed=0, n=200, c=5):
    g = torch.Generator().manual_seed(seed)
    preds = torch.randn(n, c, generator=g)
    targs = torch.randint(0, c, (n,), generator=g)
    return preds, targs


def _pairwise_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The definition, in float64: P(positive scores higher) + P(tie) / 2 over all pairs."""
    d = scores[positive][:, None].astype(np.float64) - scores[~positive][None, :].astype(np.float64)
    return float(((d > 0) + 0.5 * (d == 0)).mean())


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


def test_roc_auc_equals_the_pairwise_count_with_ties():
    g = torch.Generator().manual_seed(1)
    probs = torch.rand(300, 4, generator=g).mul(20).round().div(20)  # 21 levels: many ties
    targs = torch.randint(0, 4, (300,), generator=g)
    per = dl.per_class_auc(probs, targs)
    assert per.dtype == torch.float64 and per.shape == (4,)
    want = [_pairwise_auc(probs[:, c].numpy(), (targs == c).numpy()) for c in range(4)]
    np.testing.assert_allclose(per.numpy(), want, rtol=0, atol=1e-12)
    assert float(dl.roc_auc(probs, targs)) == pytest.approx(np.mean(want), rel=1e-6)
    oh = torch.nn.functional.one_hot(targs, 4).float()
    assert torch.equal(dl.per_class_auc(probs, oh), per)
    # only the order within a column counts: logits and their sigmoid give one AUC
    logits = torch.randn(300, 4, generator=g)
    assert torch.equal(dl.per_class_auc(logits, targs), dl.per_class_auc(torch.sigmoid(logits.double()), targs))
    # a hand case (the usual textbook one): positives 0.35, 0.8 against negatives 0.1, 0.4
    two = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    assert dl.per_class_auc(two, torch.tensor([0, 0, 1, 1])).tolist() == [0.75, 0.75]
    # perfect and reversed rankings
    assert float(dl.roc_auc(torch.eye(3), torch.arange(3))) == 1.0
    assert float(dl.roc_auc(1 - torch.eye(3), torch.arange(3))) == 0.0


def test_roc_auc_leaves_out_classes_without_items_or_without_others():
    g = torch.Generator().manual_seed(2)
    probs = torch.rand(40, 3, generator=g)
    targs = torch.randint(0, 2, (40,), generator=g)  # class 2 never occurs
    per = dl.per_class_auc(probs, targs)
    assert torch.isnan(per[2]) and not torch.isnan(per[:2]).any()
    assert float(dl.roc_auc(probs, targs)) == pytest.approx(float(per[:2].mean()), rel=1e-6)
    assert torch.isnan(dl.roc_auc(probs, torch.zeros(40, dtype=torch.long)))  # one class: no ranking to judge


def test_roc_curve_ends_at_the_corners_and_its_area_is_the_auc():
    g = torch.Generator().manual_seed(3)
    scores = torch.rand(200, generator=g).mul(10).round()
    positive = torch.rand(200, generator=g) < scores / 12
    fpr, tpr, thr = dl.roc_curve(scores, positive)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0) and thr[0] == float("inf")
    assert len(thr) == len(scores.unique()) + 1 and (fpr.diff() >= 0).all() and (tpr.diff() >= 0).all()
    # each point counts score >= threshold as positive
    i = 4
    called = scores.double() >= thr[i]
    assert float(tpr[i]) == pytest.approx(float((called & positive).sum() / positive.sum()))
    assert float(fpr[i]) == pytest.approx(float((called & ~positive).sum() / (~positive).sum()))
    area = float(torch.trapezoid(tpr, fpr))
    assert area == pytest.approx(_pairwise_auc(scores.numpy(), positive.numpy()), abs=1e-12)


def test_expected_calibration_error_by_hand_in_float64():
    g = torch.Generator().manual_seed(4)
    probs = torch.softmax(3 * torch.randn(500, 5, generator=g), 1)
    targs = torch.randint(0, 5, (500,), generator=g)
    conf, pred = probs.double().max(1)
    right = (pred == targs).numpy()
    edges = np.linspace(0, 1, 11)
    ece, counts = 0.0, []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = ((conf > lo) & (conf <= hi)).numpy()
        counts.append(inside.sum())
        if inside.any():
            ece += inside.mean() * abs(right[inside].mean() - conf.numpy()[inside].mean())
    bins = dl.calibration_bins(probs, targs, n_bins=10)
    np.testing.assert_array_equal(bins["count"].numpy(), counts)
    assert float(dl.expected_calibration_error(probs, targs, n_bins=10)) == pytest.approx(ece, rel=1e-5)
    # confidences that are right as often as they claim: ECE 0; always right at confidence 0.6: 0.4
    p = torch.tensor([[0.75, 0.25]] * 4)
    assert float(dl.expected_calibration_error(p, torch.tensor([0, 0, 0, 1]))) == 0.0
    assert float(dl.expected_calibration_error(torch.tensor([[0.6, 0.4]] * 3), torch.zeros(3, dtype=torch.long))) == pytest.approx(0.4)


def test_score_metrics_name_bad_inputs():
    probs, targs = torch.rand(10, 3), torch.randint(0, 3, (10,))
    with pytest.raises(ValueError, match=r"probs must be \(N, C\)"):
        dl.roc_auc(probs[:, 0], targs)
    with pytest.raises(ValueError, match="targets must be .* for 10 items"):
        dl.roc_auc(probs, targs[:9])
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\]"):
        dl.per_class_auc(probs, torch.full((10,), 3))
    with pytest.raises(ValueError, match="n_bins must be >= 1"):
        dl.calibration_bins(probs, targs, n_bins=0)
    with pytest.raises(ValueError, match="probabilities in \\[0, 1\\].*activation"):
        dl.expected_calibration_error(probs * 5 - 2, targs)
    with pytest.raises(ValueError, match="positive and negative items; got 0 positive"):
        dl.roc_curve(probs[:, 0], torch.zeros(10, dtype=torch.bool))
    with pytest.raises(ValueError, match="differ in shape"):
        dl.roc_curve(probs[:, 0], torch.ones(9, dtype=torch.bool))


@pytest.mark.parametrize("loss", [dl.CrossEntropy(), dl.BCEWithLogitsOneHot()], ids=["softmax", "sigmoid"])
def test_learner_gives_score_metrics_the_losss_probabilities(loss):
    from tests.helpers import tiny_learner

    learn = tiny_learner(loss_func=loss, metrics=[dl.accuracy, dl.roc_auc, dl.expected_calibration_error])
    learn.fit(1, lr=1e-2)
    probs, targs = learn.get_preds()
    row = learn.recorder.values[-1]
    assert row["roc_auc"] == pytest.approx(float(dl.roc_auc(probs, targs)), abs=1e-6)
    assert row["expected_calibration_error"] == pytest.approx(float(dl.expected_calibration_error(probs, targs)), abs=1e-6)
    # and not the logits, which the calibration error refuses (so the fit above would have failed)
    logits, _ = learn.get_preds(act=lambda x: x)
    with pytest.raises(ValueError, match="probabilities in"):
        dl.expected_calibration_error(logits, targs)
    assert takes_probabilities(dl.roc_auc) and not takes_probabilities(dl.accuracy)
    # EarlyStopping's 'auto' mode: AUC higher is better, the calibration error lower
    assert dl.EarlyStopping("roc_auc").mode == "max" and dl.EarlyStopping("expected_calibration_error").mode == "min"
