"""The DermaMNIST arm comparisons (balancing, transfer) at toy size, and their statistics
against closed-form values."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import dermlearn as dl
from dermlearn.experiments.arm_stats import (
    paired_intervals,
    summary,
    time_to_level,
    time_to_level_table,
)
from dermlearn.experiments.dermamnist_balancing import confusion_long, leading_pairs_table
from tests.helpers import require_data

CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def _runs() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for seed in range(4):
        base = rng.uniform(0.6, 0.8)
        for arm, shift in (("none", 0.0), ("a", 0.05), ("b", 0.0)):
            row = {"arm": arm, "seed": seed, "acc": base + shift + (0.01 * seed if arm == "b" else 0.0),
                   "balanced_accuracy": base / 2 + shift, "auc": 0.9}  # fmt: skip
            rows.append(row | {f"recall_{c}": 0.5 for c in CLASSES})
    return pd.DataFrame(rows)


def test_paired_intervals_are_t_intervals_of_the_per_seed_differences():
    from scipy import stats

    runs = _runs()
    paired = paired_intervals(runs, "none").set_index(["arm", "score"])
    a = paired.loc[("a", "ACC")]  # a constant +0.05 on every seed: a zero-width interval that excludes 0
    assert a["difference"] == pytest.approx(0.05) and a["low"] == pytest.approx(0.05) and a["excludes 0"]
    d = np.array([0.0, 0.01, 0.02, 0.03])  # arm b: 0.01 * seed
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    b = paired.loc[("b", "ACC")]
    assert (b["low"], b["high"]) == pytest.approx((lo, hi), abs=1e-4) and b["excludes 0"] == (lo > 0)
    assert b["per seed"] == "+0.000 +0.010 +0.020 +0.030" and b["seeds"] == 4
    table = summary(runs, CLASSES).set_index("arm")
    assert table.loc["a", "ACC"] == pytest.approx(runs[runs.arm == "a"]["acc"].mean())
    assert table.loc["none", "recall mel"] == 0.5 and list(table.index) == ["none", "a", "b"]


def test_corrected_resampled_interval_widens_the_t_interval_by_nadeau_bengio():
    from scipy import stats

    from dermlearn.experiments.arm_stats import interval

    d = [0.02, -0.01, 0.04, 0.03, 0.00, 0.05, 0.01, 0.02, -0.02, 0.03]
    j, ratio = len(d), 116 / 570
    mean, lo, hi = interval(d, ratio)
    # variance of the mean s^2 (1/J + n_test/n_train) in place of s^2/J, with J - 1 degrees of freedom
    half = stats.t.ppf(0.975, j - 1) * np.std(d, ddof=1) * np.sqrt(1 / j + ratio)
    assert mean == pytest.approx(np.mean(d)) and (lo, hi) == pytest.approx((mean - half, mean + half), abs=1e-4)
    assert interval(d) == pytest.approx(interval(d, 0.0))  # no overlap: the plain t interval
    plain = interval(d)
    assert plain[1] > 0 and lo < 0  # here the correction is what turns "excludes 0" into "does not"
    with pytest.raises(ValueError, match="test_train_ratio"):
        interval(d, -0.1)
    runs = _runs()
    wide = paired_intervals(runs, "none", test_train_ratio=0.25).set_index(["arm", "score"]).loc[("b", "ACC")]
    narrow = paired_intervals(runs, "none").set_index(["arm", "score"]).loc[("b", "ACC")]
    assert wide["high"] - wide["difference"] == pytest.approx((narrow["high"] - narrow["difference"]) * np.sqrt(1 + 4 * 0.25))


def test_time_to_level_is_the_first_epoch_at_or_above_each_level_seed_by_seed():
    rows = [("a", 0, 10, 0.5), ("a", 0, 20, 0.7), ("a", 0, 30, 0.65),  # a level equal to the score counts
            ("a", 1, 12, 0.6), ("a", 1, 24, 0.6), ("a", 1, 36, 0.8),
            ("b", 0, 5, 0.7), ("b", 0, 10, 0.72), ("b", 1, 6, 0.5), ("b", 1, 12, 0.55)]  # fmt: skip
    curves = pd.DataFrame(rows, columns=["arm", "seed", "train_s", "test_acc"]).sample(frac=1.0, random_state=0)
    curves = curves.sort_values("arm", kind="stable")  # arms in a known order, epochs shuffled
    times = time_to_level(curves, [0.6, 0.7, 0.75]).set_index(["arm", "seed", "level"])["seconds"]
    expected = {("a", 0): [20, 20, None], ("a", 1): [12, 36, 36], ("b", 0): [5, 5, None], ("b", 1): [None] * 3}
    for (arm, seed), secs in expected.items():
        for level, s in zip([0.6, 0.7, 0.75], secs):
            got = times[(arm, seed, level)]
            assert (np.isnan(got) if s is None else got == s), (arm, seed, level, got)
    table = time_to_level_table(time_to_level(curves, [0.6, 0.75]), baseline="a").set_index("level")
    # level 0.6: a at 20 s and 12 s (mean 16 s), b at 5 s on seed 0 only; b / a on seed 0 = 5 / 20
    assert table.loc[0.6, "a (min)"] == f"{16 / 60:.1f} (2/2)" and table.loc[0.6, "b (min)"] == f"{5 / 60:.1f} (1/2)"
    assert table.loc[0.6, "speed-up vs b"] == "0.25 (1/2)"
    assert table.loc[0.75, "b (min)"] == "- (0/2)" and table.loc[0.75, "speed-up vs b"] == "- (0/2)"
    assert list(table.columns) == ["a (min)", "b (min)", "speed-up vs b"]
    # over two or more seeds the speed-up carries its t interval: b / a = 1, 2, 3 on seeds 0, 1, 2
    from scipy import stats

    times = pd.DataFrame({"arm": ["a"] * 3 + ["b"] * 3, "seed": [0, 1, 2] * 2, "level": 0.7,
                          "seconds": [10.0, 10.0, 10.0, 10.0, 20.0, 30.0]})  # fmt: skip
    lo, hi = stats.t.interval(0.95, 2, loc=2.0, scale=stats.sem([1.0, 2.0, 3.0]))
    assert time_to_level_table(times, "a").loc[0, "speed-up vs b"] == f"2.00 [{lo:.2f}, {hi:.2f}] (3/3)"
    with pytest.raises(ValueError, match="test_acc"):
        time_to_level(curves.drop(columns="test_acc"), [0.6])
    with pytest.raises(ValueError, match="levels is empty"):
        time_to_level(curves, [])
    with pytest.raises(ValueError, match="baseline 'c'"):
        time_to_level_table(time_to_level(curves, [0.6]), baseline="c")


def test_leading_pairs_count_both_directions_and_the_change_of_their_sum():
    targets = torch.tensor([4, 4, 4, 5, 5, 2, 2, 5])  # mel, mel, mel, nv, nv, bkl, bkl, nv
    base = torch.tensor([5, 5, 4, 4, 5, 5, 2, 2])  # mel->nv x2, nv->mel x1, bkl->nv x1, nv->bkl x1
    arm = torch.tensor([4, 5, 4, 5, 5, 5, 2, 5])  # mel->nv x1, bkl->nv x1, nv->... none
    conf = pd.concat([confusion_long(torch.nn.functional.one_hot(p, 7).float(), targets, CLASSES).assign(arm=name, seed=0)
                      for name, p in (("none", base), ("arm", arm))])  # fmt: skip
    assert conf.query("arm == 'none' and true == 'mel' and predicted == 'nv'")["count"].item() == 2
    table = leading_pairs_table(conf, "none", k=2).set_index("arm")
    assert list(table.columns) == ["mel / nv", "bkl / nv"]
    assert table.loc["none", "mel / nv"] == "2.0 / 1.0" and table.loc["arm", "mel / nv"] == "1.0 / 0.0 (-2.0)"
    assert table.loc["arm", "bkl / nv"] == "1.0 / 0.0 (-1.0)"


def test_balancing_experiment_smoke(public_data_cache, tmp_path):
    """Two arms at toy size: each scored on the whole unbalanced test split, the loss arm
    with square-root weights, and the tables the docs quote."""
    require_data("dermamnist.tar.gz")
    from dermlearn.experiments.dermamnist_balancing import main

    out = tmp_path / "bal"
    assert main(["--quick", "--subset", "160", "--bs", "32", "--budget-min", "0.05", "--lr-find-iters", "6",
                 "--probe-batches", "2", "--arms", "loss weights 1/sqrt(n)", "--out", str(out)]) == 0  # fmt: skip
    runs = pd.read_csv(out / "per_seed.csv")
    assert sorted(runs["arm"]) == ["loss weights 1/sqrt(n)", "none"]
    conf = pd.read_csv(out / "confusion.csv")
    assert (conf.groupby("arm")["count"].sum() == 2005).all()  # the whole official test split, once per arm
    for arm, g in conf.groupby("arm"):
        hits = g[g["true"] == g["predicted"]]["count"].sum()
        assert runs.set_index("arm").loc[arm, "acc"] == pytest.approx(hits / 2005)
    assert (out / "paired.csv").is_file() and "Leading confused pairs" in (out / "results.md").read_text()
    assert json.loads((out / "config.json").read_text())["arms"] == ["none", "loss weights 1/sqrt(n)"]


def test_transfer_experiment_pretrains_a_body_that_create_model_loads(public_data_cache, tmp_path):
    """CIFAR-10 pretraining at toy size writes a body file; the fine-tuning arms start from
    it (the two-phase arm trains its head on the frozen body first); from scratch does not."""
    require_data("dermamnist.tar.gz")
    require_data("cifar10.tar.gz")
    from dermlearn.experiments.dermamnist_transfer import main

    out = tmp_path / "tr"
    assert main(["--quick", "--subset", "160", "--pretrain-subset", "200", "--bs", "32", "--budget-min", "0.08",
                 "--pretrain-min", "0.05", "--lr-find-iters", "6", "--probe-batches", "2", "--head-cycles", "1",
                 "--out", str(out)]) == 0  # fmt: skip
    body = out / "cifar10_resnet20.pth"
    sd = torch.load(body, weights_only=True)
    model = dl.create_model("resnet20", 7, pretrained=body)
    assert all(torch.equal(v, sd[f"body.{k}"]) for k, v in model.body.state_dict().items())
    runs = pd.read_csv(out / "per_seed.csv").set_index("arm")
    assert runs.loc["two-phase, discriminative rates", "head_epochs"] == 1 and runs.loc["from scratch", "head_epochs"] == 0
    assert list(runs["init"]) == ["pretrained", "pretrained", "random"]
    history = pd.read_csv(out / "history.csv")
    assert set(history.query("phase == 'head'")["arm"]) == {"two-phase, discriminative rates"}
    assert 0 <= pd.read_csv(out / "pretraining.csv")["cifar10_test_acc"].item() <= 1
