"""explain and Interpretation."""


from __future__ import annotations

import numpy as np
import pytest
import torch

import dermlearn as dl


def test_explain_and_interpretation(trained, tmp_path):
    learn = trained
    ds = learn.dls.valid.dataset
    ex = learn.explain(ds.images[:4])
    assert set(ex.gradcam) == {"top1", "runner_up"} and set(ex.gbp) == {"top1", "runner_up"}
    p1 = ex.probs.gather(1, ex.gradcam["top1"].classes[:, None].cpu())
    p2 = ex.probs.gather(1, ex.gradcam["runner_up"].classes[:, None].cpu())
    assert (p1 >= p2).all() and ex.images.shape == (4, 3, 64, 64) and 0 <= ex.images.min() and ex.images.max() <= 1

    interp = dl.Interpretation.from_learner(learn)
    cm = interp.confusion_matrix()
    assert cm.sum() == len(ds) and np.trace(cm) / cm.sum() == pytest.approx(interp.accuracy)
    rep = interp.classification_report()
    np.testing.assert_allclose(rep["recall"], np.diag(cm) / cm.sum(1))
    np.testing.assert_allclose(rep["precision"], np.diag(cm) / np.maximum(cm.sum(0), 1))
    assert interp.balanced_accuracy == pytest.approx(float(dl.balanced_accuracy(interp.probs, interp.targets)), rel=1e-6)
    mc = interp.most_confused()
    assert all(n >= m for (_, _, n), (_, _, m) in zip(mc, mc[1:]))
    assert sum(n for _, _, n in mc) == cm.sum() - np.trace(cm)
    losses, idx = interp.top_losses(5)
    assert (losses[:-1] >= losses[1:]).all() and losses[0] == interp.losses.max()
    groups = ["a" if i % 2 else "b" for i in range(len(ds))]
    byg = interp.metrics_by_group(groups, name="half").set_index("half")
    odd = torch.arange(len(ds)) % 2 == 1
    assert byg.loc["a", "n"] == int(odd.sum()) and byg.loc["b", "n"] == int((~odd).sum())
    assert byg.loc["a", "accuracy"] == pytest.approx(float((interp.preds[odd] == interp.targets[odd]).float().mean()))
    fig = interp.plot_top_losses(4)
    assert "P(actual)" in fig.axes[0].get_title()
    a, b, _ = mc[0]
    path = tmp_path / "gallery.png"
    fig = interp.plot_pair_gallery(a, b, k=2, path=path)
    assert path.stat().st_size > 10_000 and len(fig.axes) % 5 == 0
    with pytest.raises(ValueError, match="unknown class"):
        interp.pair_cases("nope", b)


def test_interpretation_specificity_roc_and_calibration(trained):
    interp = dl.Interpretation.from_learner(trained)
    cm = interp.confusion_matrix().astype(np.float64)
    rep = interp.classification_report()
    assert list(rep.columns) == ["precision", "recall", "specificity", "f1", "auc", "support"]
    for c in range(5):  # specificity: of the items that are not c, the share not called c
        not_c = interp.targets != c
        assert rep["specificity"].iloc[c] == pytest.approx(float((interp.preds[not_c] != c).double().mean()))
    np.testing.assert_allclose(rep["specificity"], (cm.sum() - cm.sum(1) - cm.sum(0) + np.diag(cm)) / (cm.sum() - cm.sum(1)))
    np.testing.assert_array_equal(rep["auc"], dl.per_class_auc(interp.probs, interp.targets).numpy())
    assert interp.roc_auc == pytest.approx(float(rep["auc"].mean())) and 0.5 < interp.roc_auc <= 1
    # the operating point, against a search over every threshold, highest first (of equally
    # sensitive thresholds the highest is the most specific)
    c, want = 2, 0.9
    p, pos = interp.probs[:, c].double(), interp.targets == c
    best = (-1.0, None)
    for t in [float("inf"), *p.unique().flip(0).tolist()]:
        called = p >= t
        spec, sens = float((~called[~pos]).double().mean()), float(called[pos].double().mean())
        if spec >= want and sens > best[0]:
            best = (sens, t)
    sens, thr = interp.sensitivity_at_specificity(interp.vocab[c], want)
    assert (sens, thr) == pytest.approx(best)
    assert interp.sensitivity_at_specificity(c, 1.0)[0] <= sens <= interp.sensitivity_at_specificity(c, 0.0)[0] == 1.0
    with pytest.raises(ValueError, match=r"specificity must be in \[0, 1\]"):
        interp.sensitivity_at_specificity(c, 90)
    fig = interp.plot_roc()
    assert len(fig.axes[0].lines) == 5 + 1  # five classes and the chance diagonal
    assert fig.axes[0].get_legend().get_texts()[0].get_text() == f"{interp.vocab[0]} (AUC {rep['auc'].iloc[0]:.3f})"
    fig = interp.plot_calibration(n_bins=10)
    assert f"ECE {interp.expected_calibration_error(10):.3f}" in fig.axes[0].get_title()
    assert interp.expected_calibration_error(10) == pytest.approx(float(dl.expected_calibration_error(interp.probs, interp.targets, 10)))
    table = interp.bootstrap(n=200)
    assert list(table.index) == ["accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "expected_calibration_error"]
    assert table.loc["roc_auc", "value"] == pytest.approx(interp.roc_auc, abs=1e-6)
    assert table.loc["accuracy", "value"] == pytest.approx(interp.accuracy)
    assert (table["low"] <= table["value"]).all() and (table["value"] <= table["high"]).all()
    assert table.loc["accuracy"].tolist() == list(dl.bootstrap_ci(dl.accuracy, interp.probs, interp.targets, n=200))
