"""dermlearn's metrics against the field's own scorers: torchmetrics and the ISIC challenge's
scoring package (isic-challenge-scoring), on random predictions, on ties, and on a trained
model's predictions. Where the conventions differ, the test pins the difference down."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import dermlearn as dl

torchmetrics = pytest.importorskip("torchmetrics", reason="torchmetrics (dev extra) is not installed")
isic = pytest.importorskip("isic_challenge_scoring", reason="isic-challenge-scoring (dev extra) is not installed")
from isic_challenge_scoring import metrics as isic_metrics  # noqa: E402

C = 7  # DermaMNIST's / ISIC 2018's classes


def _random(n: int, seed: int, ties: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    targets = torch.arange(n) % C  # every class present
    targets = targets[torch.randperm(n, generator=g)]
    logits = torch.randn(n, C, generator=g) + 1.5 * torch.nn.functional.one_hot(targets, C)
    probs = logits.softmax(-1)
    if ties:  # scores on a coarse grid: many ties within each column
        probs = (probs * 4).round() / 4 + 1e-3
        probs = probs / probs.sum(-1, keepdim=True)
    return probs.double(), targets


def _isic_frames(probs: torch.Tensor, targets: torch.Tensor):
    names = [f"c{i}" for i in range(probs.shape[1])]
    truth = pd.DataFrame(torch.nn.functional.one_hot(targets, probs.shape[1]).numpy().astype(float), columns=names)
    pred = pd.DataFrame(probs.numpy(), columns=names)
    return truth, pred, pd.Series(np.ones(len(targets)))


CASES = [("random", 0, False), ("random", 1, False), ("ties", 2, True)]


@pytest.mark.parametrize(("name", "seed", "ties"), CASES)
def test_torchmetrics_auroc_recall_and_calibration_error(name, seed, ties):
    probs, targets = _random(350, seed, ties)
    tm = torchmetrics.classification
    auroc = tm.MulticlassAUROC(num_classes=C, average="macro", thresholds=None)(probs.float(), targets)
    assert float(dl.roc_auc(probs, targets)) == pytest.approx(float(auroc), abs=1e-6)
    recall = tm.MulticlassRecall(num_classes=C, average="macro")(probs.float(), targets)
    assert float(dl.balanced_accuracy(probs, targets)) == pytest.approx(float(recall), abs=1e-6)
    ece = tm.MulticlassCalibrationError(num_classes=C, n_bins=15, norm="l1")(probs.float(), targets)
    assert float(dl.expected_calibration_error(probs, targets)) == pytest.approx(float(ece), abs=1e-5)


@pytest.mark.parametrize(("name", "seed", "ties"), CASES)
def test_isic_challenge_scoring_auc_per_class_and_macro(name, seed, ties):
    probs, targets = _random(350, seed, ties)
    truth, pred, w = _isic_frames(probs, targets)
    per_class = dl.per_class_auc(probs, targets)
    for c, col in enumerate(truth.columns):
        assert float(per_class[c]) == pytest.approx(isic_metrics.auc(truth[col], pred[col], w), abs=1e-12), col
    assert float(dl.roc_auc(probs, targets)) == pytest.approx(np.mean([isic_metrics.auc(truth[c], pred[c], w) for c in truth]), abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_isic_challenge_scoring_balanced_accuracy(seed):
    probs, targets = _random(350, seed)
    truth, pred, w = _isic_frames(probs, targets)
    assert float(dl.balanced_accuracy(probs, targets)) == pytest.approx(isic_metrics.balanced_multiclass_accuracy(truth, pred, w), abs=1e-6)


def test_tied_top_scores_differ_by_convention():
    """Rows whose highest probability is shared by several classes: ISIC's scorer calls them
    'undecided' (always wrong), dermlearn (like torchmetrics) takes the first of them. With
    those rows counted wrong, the two agree. Continuous probabilities almost never tie."""
    probs, targets = _random(350, 2, ties=True)
    truth, pred, w = _isic_frames(probs, targets)
    tied = (probs == probs.max(-1, keepdim=True).values).sum(-1) > 1
    assert tied.sum() > 20
    undecided = probs.clone()
    undecided[tied] = 0.0
    undecided[tied, (targets[tied] + 1) % C] = 1.0  # a wrong class for every tied row
    assert float(dl.balanced_accuracy(undecided, targets)) == pytest.approx(
        isic_metrics.balanced_multiclass_accuracy(truth, pred, w), abs=1e-6)  # fmt: skip
    assert float(dl.balanced_accuracy(probs, targets)) > isic_metrics.balanced_multiclass_accuracy(truth, pred, w)


def test_on_tied_top_scores_dermlearn_follows_medmnists_evaluator():
    """The field has two conventions for tied top scores; dermlearn keeps MedMNIST's (the
    first of the tied classes, numpy's argmax), which its DermaMNIST results are compared
    under, and which torchmetrics shares."""
    evaluator = pytest.importorskip("medmnist.evaluator", reason="medmnist (dev extra) is not installed")
    probs, targets = _random(350, 2, ties=True)
    assert ((probs == probs.max(-1, keepdim=True).values).sum(-1) > 1).sum() > 20
    acc = evaluator.getACC(targets.numpy(), probs.numpy(), "multi-class")
    assert float(dl.accuracy(probs, targets)) == pytest.approx(acc, abs=1e-7)
    tm = torchmetrics.classification.MulticlassRecall(num_classes=C, average="macro")(probs.float(), targets)
    assert float(dl.balanced_accuracy(probs, targets)) == pytest.approx(float(tm), abs=1e-6)


def test_per_class_sensitivity_and_specificity_at_the_argmax():
    """ISIC scores sensitivity and specificity per category at probability > 0.5; dermlearn
    at the argmax. With the argmax as one-hot predictions the two agree."""
    probs, targets = _random(350, 3)
    truth, _, w = _isic_frames(probs, targets)
    onehot = pd.DataFrame(torch.nn.functional.one_hot(probs.argmax(-1), C).numpy().astype(float), columns=truth.columns)
    score = isic.classification.ClassificationScore(truth, onehot, pd.DataFrame({"score_weight": w, "validation_weight": w}),
                                                    isic.classification.ClassificationMetric.BALANCED_ACCURACY)  # fmt: skip
    recall = dl.per_class_recall(probs, targets)
    cm = dl.confusion_matrix(probs, targets).double()
    specificity = [(cm.sum() - cm[c].sum() - cm[:, c].sum() + cm[c, c]) / (cm.sum() - cm[c].sum()) for c in range(C)]
    for c in range(C):
        row = score.per_category.iloc[c]
        assert row["sensitivity"] == pytest.approx(float(recall[c]), abs=1e-6)
        assert row["specificity"] == pytest.approx(float(specificity[c]), abs=1e-12)


def test_absent_classes_differ_by_convention():
    """A class with no items: dermlearn's balanced accuracy and macro AUC leave it out (as
    ISIC's scorer and scikit-learn do); torchmetrics' macro recall counts it as 0."""
    probs, targets = _random(140, 4)
    keep = targets != 6
    probs, targets = probs[keep], targets[keep]
    truth, pred, w = _isic_frames(probs, targets)
    ours = float(dl.balanced_accuracy(probs, targets))
    assert ours == pytest.approx(isic_metrics.balanced_multiclass_accuracy(truth, pred, w), abs=1e-6)
    tm = float(torchmetrics.classification.MulticlassRecall(num_classes=C, average="macro")(probs.float(), targets))
    assert tm == pytest.approx(ours * 6 / 7, abs=1e-6)


def test_a_trained_models_predictions(trained):
    probs, targets = trained.get_preds()
    truth, pred, w = _isic_frames(probs.double(), targets)
    assert float(dl.balanced_accuracy(probs, targets)) == pytest.approx(isic_metrics.balanced_multiclass_accuracy(truth, pred, w), abs=1e-6)
    auroc = torchmetrics.classification.MulticlassAUROC(num_classes=3, average="macro", thresholds=None)(probs, targets)
    assert float(dl.roc_auc(probs, targets)) == pytest.approx(float(auroc), abs=1e-6)


def test_interpret_writes_the_isic_submission_layout(tmp_path, monkeypatch, capsys):
    """dermlearn interpret --isic-csv: image ids and class probabilities as the ISIC challenge
    takes submissions, scored by the scoring package's metrics as dermlearn scores them. (The
    package's own CSV parser, parse_csv, calls DataFrame.applymap, which pandas 3 removed.)"""
    from dermlearn.cli import main
    from tests.helpers import image_folder, untrained_model_file

    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    imgs = image_folder(tmp_path, n=30)
    model = untrained_model_file(tmp_path, size=32)
    out = tmp_path / "interp"
    assert main(["interpret", "--model", str(model), "--data", str(imgs), "--out", str(out), "--bootstrap", "0",
                 "--isic-csv", str(out / "isic.csv")]) == 0  # fmt: skip
    capsys.readouterr()
    classes = dl.load_learner(model).meta["classes"]
    table = pd.read_csv(out / "isic.csv", dtype={"image": str})
    assert list(table.columns) == ["image", *classes] and table["image"].is_unique
    assert np.allclose(table[classes].sum(axis=1), 1.0, atol=1e-6) and ((table[classes] >= 0) & (table[classes] <= 1)).all().all()
    # the true class of each image is its folder
    truth_of = {p.stem: p.parent.name for p in imgs.rglob("*.png")}
    targets = torch.tensor([classes.index(truth_of[i]) for i in table["image"]])
    probs = torch.tensor(table[classes].to_numpy())
    truth, pred, w = _isic_frames(probs, targets)
    pred.columns = truth.columns
    per_class = dl.per_class_auc(probs, targets)
    for c, col in enumerate(truth.columns):
        assert float(per_class[c]) == pytest.approx(isic_metrics.auc(truth[col], pred[col], w), abs=1e-12)
