"""The DermaMNIST benchmark: scoring as MedMNIST's evaluator, planning, and a smoke run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import dermlearn as dl
from dermlearn.experiments.dermamnist import PUBLISHED, choose_on_valid, plan_cycles, t_interval
from tests.helpers import require_data, tiny_learner


@pytest.mark.parametrize("ties", [False, True], ids=["continuous", "ties"])
def test_acc_and_auc_equal_medmnists_evaluator(ties):
    """dermlearn's accuracy and macro one-vs-rest AUC are MedMNIST's getACC / getAUC
    (multi-class) on the same predictions, ties included."""
    evaluator = pytest.importorskip("medmnist.evaluator", reason="the medmnist package is in the dev extra")
    g = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 7, (500,), generator=g)
    probs = (torch.randn(500, 7, generator=g) + 1.5 * torch.nn.functional.one_hot(targets, 7)).softmax(1)
    if ties:
        probs = (probs * 10).round() / 10  # many equal scores within each class
    y_true, y_score = targets.numpy()[:, None], probs.double().numpy()
    assert float(dl.accuracy(probs, targets)) == pytest.approx(evaluator.getACC(y_true, y_score, "multi-class"), abs=1e-7)
    assert float(dl.roc_auc(probs, targets)) == pytest.approx(evaluator.getAUC(y_true, y_score, "multi-class"), abs=1e-6)


def test_cycles_fill_the_budget():
    # 60 s epochs, 30 minutes hold 30 epochs: 2 x (1 + 2 + 4 + 8) = 30, the most that fit
    assert plan_cycles(60.0, 1800.0) == (4, 2)
    assert plan_cycles(60.0, 1860.0) == (5, 1)  # 31 epochs: 1 + 2 + 4 + 8 + 16
    assert plan_cycles(60.0, 900.0) == (4, 1) and plan_cycles(1000.0, 10.0) == (1, 1)
    n, length = plan_cycles(28.0, 1700.0)  # about resnet20 on DermaMNIST: 60 epochs at most
    assert length * (2**n - 1) * 28.0 <= 1700.0 and length * (2**n - 1) >= 55


def test_the_epoch_timer_skips_warm_up_batches_and_stops_the_fit():
    from dermlearn.experiments.dermamnist import _BatchTimer

    timer = _BatchTimer(4, skip=3)
    learn = tiny_learner()  # 10 batches an epoch
    learn.fit(2, lr=1e-2, cbs=[timer])
    assert len(timer._ends) == 7 and (learn.epoch, learn.iter) == (0, 6)  # stopped after 3 + 4 batches of epoch 0
    assert timer.batch_s == pytest.approx((timer._ends[6] - timer._ends[2]) / 4) and timer.batch_s > 0


def test_seed_interval_is_students_t():
    from scipy import stats

    values = [0.781, 0.774, 0.790]
    mean, low, high = t_interval(values)
    ref = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert (low, high) == pytest.approx(ref, abs=1e-4) and mean == pytest.approx(np.mean(values))
    assert np.isnan(t_interval([0.7])[1])


def test_the_test_prediction_is_chosen_by_validation_accuracy_alone():
    """Every candidate's validation accuracy is that of its own predictions (recomputed
    here from each snapshot's weights), the most accurate is chosen (of equals, the fewest
    models and no augmentation), and the returned predictor is that candidate."""
    ens = dl.SnapshotEnsemble(dl.SnapshotEnsemble.cycle_ends(3, 1))
    learn = tiny_learner(metrics=[dl.accuracy])
    best = dl.EarlyStopping(monitor="accuracy", patience=10**9, restore_best_weights=True)
    learn.fit_sgdr(3, 1, lr_max=3e-2, cbs=[ens, best])
    predict, chosen, valid_acc = choose_on_valid(learn, ens, n_tta=2)
    names = ["best epoch", "best epoch + TTA", "last 1 snapshot", "last 1 snapshot + TTA", "last 2 snapshots",
             "last 2 snapshots + TTA", "last 3 snapshots", "last 3 snapshots + TTA"]  # fmt: skip
    assert sorted(valid_acc) == sorted(names)
    plain, targets = learn.get_preds()
    assert valid_acc["best epoch"] == pytest.approx(float(dl.accuracy(plain, targets)))
    mean = torch.zeros_like(plain, dtype=torch.float64)
    for _, state in ens.snapshots[-2:]:
        other = tiny_learner()
        other.model.load_state_dict(state)
        mean += other.get_preds()[0].double() / 2
    assert valid_acc["last 2 snapshots"] == pytest.approx(float(dl.accuracy(mean, targets)))
    # this learner has no augmentation: TTA is the plain pass, so it is never chosen over it
    assert valid_acc["last 3 snapshots + TTA"] == valid_acc["last 3 snapshots"]
    top = max(valid_acc.values())
    assert chosen == next(name for name in names if valid_acc[name] == top) and "TTA" not in chosen
    probs, t = predict(learn.dls.valid)
    assert torch.equal(t, targets) and float(dl.accuracy(probs, t)) == pytest.approx(top)
    # without snapshots or TTA the best epoch is the only candidate
    assert choose_on_valid(learn, None, 0)[1:] == ("best epoch", {"best epoch": valid_acc["best epoch"]})


def test_dermamnist_experiment_smoke(public_data_cache, tmp_path, monkeypatch):
    """A toy run end to end: trains, scores the test split once, writes the table with the
    published rows and the test predictions, whose ACC / AUC the table repeats."""
    require_data("dermamnist.tar.gz")
    from dermlearn.experiments.dermamnist import main

    out = tmp_path / "res"
    assert main(["--quick", "--subset", "160", "--bs", "32", "--budget-min", "0.15", "--lr-find-iters", "8",
                 "--bootstrap", "20", "--out", str(out)]) == 0  # fmt: skip
    table = pd.read_csv(out / "results.csv")
    assert table["method"].tolist()[: len(PUBLISHED)] == [p["method"] for p in PUBLISHED]
    assert table["ACC"].tolist()[: len(PUBLISHED)] == [p["acc"] for p in PUBLISHED]
    seed = pd.read_csv(out / "per_seed.csv").iloc[0]
    assert seed["arch"] == "resnet20" and seed["epochs"] >= 1 and seed["acc_low"] <= seed["acc"] <= seed["acc_high"]
    # the way the test split was predicted was chosen on valid, among the best epoch, TTA and snapshots
    candidates = {c[len("valid_acc["):-1]: seed[c] for c in seed.index if c.startswith("valid_acc[")}
    assert {"best epoch", "best epoch + TTA"} <= set(candidates)
    assert candidates[seed["chosen"]] == max(candidates.values()) and seed["select_s"] > 0
    preds = pd.read_csv(out / "test_predictions_seed0.csv")
    assert len(preds) == 2005  # the whole official test split, scored once
    probs = torch.tensor(preds[["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]].to_numpy(), dtype=torch.float32)
    targets = torch.tensor(preds["target"].to_numpy())
    assert seed["acc"] == pytest.approx(float(dl.accuracy(probs, targets)), abs=1e-6)
    assert seed["auc"] == pytest.approx(float(dl.roc_auc(probs, targets)), abs=1e-6)
    assert table["ACC"].iloc[-1] == pytest.approx(seed["acc"])
    config = json.loads((out / "config.json").read_text())
    assert config["experiment"] == "dermamnist" and config["seeds"] == [0] and "commit" in config
    assert (out / "history.csv").is_file() and (out / "history.png").stat().st_size > 10_000
