"""The ``dermlearn`` command: demo end to end, help and exit codes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import dermlearn as dl
from dermlearn.cli import main

from .conftest import REPO as REPO_ROOT


def test_demo_quick_writes_plots_and_model(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path), "--no-bar"]) == 0
    out = capsys.readouterr().out
    for f in ("lr_find.png", "loss.png", "lr.png", "confusion.png", "models/demo.pth"):
        assert (tmp_path / f).stat().st_size > 1000, f
    acc = float(re.search(r"validation: accuracy ([0-9.]+)", out).group(1))
    assert 0.4 < acc <= 1.0  # five classes: chance is 0.2
    assert "confusion matrix" in out and "fit_sgdr: 3 cycles" in out
    assert "data: 400 synthetic lesion images, 32x32" in out


def test_demo_options_win_over_quick(tmp_path, capsys):
    assert main(["demo", "--quick", "--n", "60", "--size", "24", "--out", str(tmp_path), "--no-bar"]) == 0
    assert "data: 60 synthetic lesion images, 24x24" in capsys.readouterr().out


def test_help_and_exit_codes():
    r = subprocess.run([sys.executable, "-m", "dermlearn", "demo", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--quick" in r.stdout and "--confounders" in r.stdout
    r = subprocess.run([sys.executable, "-m", "dermlearn"], capture_output=True, text=True)
    assert r.returncode == 2
    r = subprocess.run([sys.executable, "-m", "dermlearn", "demo", "--n", "abc"], capture_output=True, text=True)
    assert r.returncode == 2 and "invalid int value" in r.stderr


def test_demo_bad_value_is_one_line_error(capsys):
    assert main(["demo", "--quick", "--arch", "resnet35", "--out", "/tmp/x-dermlearn-bad"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dermlearn demo: error: unknown architecture 'resnet35'")


def _folder(tmp_path, n=90):
    from .test_data import synthetic_folder

    synthetic_folder(tmp_path / "imgs", n=n, size=40, n_classes=3)
    return tmp_path / "imgs"


def test_loss_balancing_takes_the_weight_power(tmp_path, monkeypatch):
    import dermlearn as dl
    from dermlearn.cli import _learner_for, build_parser
    from dermlearn.cli_data import data_from_args

    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    imgs = _folder(tmp_path)
    rare = sorted(p for p in imgs.iterdir() if p.is_dir())[0]
    for f in sorted(rare.iterdir())[4:]:  # keep 4 images of the first class
        f.unlink()
    args = build_parser().parse_args(["train", "--data", str(imgs), "--arch", "simple_cnn", "--size", "32", "--balance", "loss",
                                      "--weight-power", "0.5", "--no-bar"])  # fmt: skip
    data = data_from_args(args)
    y = data.y[data.indices("train")]
    learn = _learner_for(args, data)
    torch.testing.assert_close(learn.loss_func.weight, dl.inverse_frequency_weights(y, 3, power=0.5))
    assert learn.loss_func.weight[0] > learn.loss_func.weight[1]  # the rare class weighs more
    args.weight_power = 1.0
    torch.testing.assert_close(_learner_for(args, data).loss_func.weight, dl.inverse_frequency_weights(y, 3))


def test_every_balancing_of_the_library_is_a_cli_choice():
    from dermlearn.cli import build_parser
    from dermlearn.data.dermdata import BALANCE

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    (balance,) = [a for a in train._actions if a.dest == "balance"]
    assert tuple(balance.choices) == BALANCE and balance.default in BALANCE


def _weights(path) -> dict[str, torch.Tensor]:
    return dl.load_learner(path).model.state_dict()


# every --balance choice, each with one --correct choice (hair: the slow one, with the
# fastest balancing), so that the five pairs of runs cover every option of both flags
REPRO = [("none", ["vignette"]), ("static", ["illumination"]), ("resample", ["hair"]),
         ("dynamic", ["colour"]), ("loss", ["gamma"])]  # fmt: skip


def test_reproducibility_cases_cover_every_option():
    from dermlearn.cli import CORRECTIONS, build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    balance = next(a for a in train._actions if a.dest == "balance")
    assert sorted(b for b, _ in REPRO) == sorted(balance.choices)
    assert sorted(c for _, cs in REPRO for c in cs) == sorted(CORRECTIONS)


@pytest.mark.parametrize(("balance", "correct"), REPRO, ids=[f"{b}-{'-'.join(c)}" for b, c in REPRO])
def test_train_twice_with_one_seed_gives_identical_weights(tmp_path, monkeypatch, capsys, balance, correct):
    """Two `dermlearn train` runs in one process (the global RNG moved on by the first) give
    bit-identical weights and the same LR-finder valley; another seed gives other weights.
    Without seeding, the initial weights followed the process's RNG."""
    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    imgs = _folder(tmp_path, n=60)
    args = ["train", "--data", str(imgs), "--arch", "simple_cnn", "--size", "24", "--bs", "16", "--cycles", "1",
            "--num-it", "20", "--balance", balance, "--correct", *correct, "--no-bar"]  # fmt: skip
    runs = {}
    # another seed must give other weights (checked once: it costs a third run)
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1"))[: 3 if balance == "none" else 2]:
        assert main([*args, "--seed", seed, "--out", str(tmp_path / name)]) == 0
        runs[name] = (_weights(tmp_path / name / "model.pth"), re.search(r"valley=(\S+),", capsys.readouterr().out).group(1))
    (wa, va), (wb, vb) = runs["a"], runs["b"]
    assert va == vb and wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    if "c" in runs:
        assert not all(torch.equal(wa[k], runs["c"][0][k]) for k in wa)


def test_train_is_reproducible_across_processes(tmp_path):
    """Two processes with different hash seeds, the first decoding the images and the second
    reading them from the disk cache the first wrote, train bit-identical weights."""
    imgs = _folder(tmp_path, n=60)
    env = {**os.environ, "DERMLEARN_CACHE": str(tmp_path / "cache")}
    for name, hashseed in (("p1", "1"), ("p2", "2")):
        r = subprocess.run([sys.executable, "-m", "dermlearn", "train", "--data", str(imgs), "--arch", "simple_cnn",
                            "--size", "24", "--bs", "16", "--cycles", "1", "--num-it", "20", "--correct", "illumination", "gamma",
                            "--out", str(tmp_path / name), "--no-bar"],
                           capture_output=True, text=True, env={**env, "PYTHONHASHSEED": hashseed})  # fmt: skip
        assert r.returncode == 0, r.stderr
    assert any((tmp_path / "cache").iterdir())
    w1, w2 = _weights(tmp_path / "p1" / "model.pth"), _weights(tmp_path / "p2" / "model.pth")
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_train_with_corrections_exports_them(tmp_path, monkeypatch, capsys):
    """--correct puts the corrections in the training pipeline, in the order given, and in the
    model file, so that predict applies them."""
    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    imgs = _folder(tmp_path)
    out = tmp_path / "out"
    assert main(["train", "--data", str(imgs), "--arch", "simple_cnn", "--size", "32", "--bs", "16", "--cycles", "1",
                 "--lr", "1e-2", "--correct", "vignette", "illumination", "colour", "gamma", "--out", str(out), "--no-bar"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "corrections (exported with the model): CropVignette(method='dark', shrink=0.98), CorrectIllumination()" in text
    learn = dl.load_learner(out / "model.pth")
    names = [s["name"] for s in learn.meta["preprocessing"]]
    assert names == ["CropVignette", "CorrectIllumination", "ShadesOfGray", "AutoGamma", "resize", "normalize"]
    files = [str(p) for p in sorted(imgs.rglob("*.png"))[:2]]
    assert main(["predict", "--model", str(out / "model.pth"), *files]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert main(["train", "--data", str(imgs), "--arch", "simple_cnn", "--correct", "hair", "hair", "--out", str(out), "--no-bar"]) == 2
    assert "dermlearn train: error: --correct lists a correction twice: hair hair" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--data", str(imgs), "--correct", "sharpen", "--out", str(out)])
    assert "invalid choice: 'sharpen'" in capsys.readouterr().err


def test_train_interpret_predict_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    imgs = _folder(tmp_path)
    out = tmp_path / "out"
    assert main(["train", "--data", str(imgs), "--arch", "simple_cnn", "--size", "32", "--bs", "16", "--cycles", "2",
                 "--out", str(out), "--no-bar"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "random init, all layers: fit_sgdr(2, 1" in text
    valley = float(re.search(r"valley=(\S+),", text).group(1))
    assert f"-> lr {valley:.2e}" in text  # from scratch the recipe trains at the range test's valley
    for f in ("model.pth", "history.csv", "loss.png", "lr_find.png"):
        assert (out / f).is_file(), f
    # a few batches at valley leave this tiny model near chance; for the predictions and
    # heatmaps below, one that has learned something (a given rate skips the range test)
    assert main(["train", "--data", str(imgs), "--arch", "simple_cnn", "--size", "32", "--bs", "16", "--cycles", "2",
                 "--lr", "1e-2", "--calibrate", "--out", str(out), "--no-bar"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "lr_find" not in text and "temperature scaling on the validation split: T = " in text
    assert dl.load_learner(out / "model.pth").temperature == pytest.approx(float(text.split("T = ")[1].split()[0]), abs=5e-4)
    import pandas as pd

    hist = pd.read_csv(out / "history.csv")
    assert len(hist) >= 1 and {"train_loss", "valid_loss", "accuracy"} <= set(hist.columns)
    res = tmp_path / "interp"
    assert main(["interpret", "--model", str(out / "model.pth"), "--data", str(imgs), "--out", str(res), "--min-count", "1"]) == 0
    text = capsys.readouterr().out
    for f in ("metrics.csv", "confusion.png", "confusion_normalized.png", "roc.png", "calibration.png", "report.csv", "leading_pairs.md"):
        assert (res / f).is_file(), f
    assert "balanced_accuracy" in text and "roc_auc" in text and "95% intervals" in text
    metrics = pd.read_csv(res / "metrics.csv", index_col="metric")
    assert list(metrics.columns) == ["value", "low", "high"] and (metrics["low"] <= metrics["high"]).all() and (res / "leading_pairs.md").read_text().startswith("| label 1 | label 2 | count | 1 -> 2 | 2 -> 1 |")
    heat, csv = tmp_path / "heat", tmp_path / "p.csv"
    (tmp_path / "bad.png").write_text("not an image")
    files = [str(p) for p in sorted(imgs.rglob("*.png"))[:3]]
    assert main(["predict", "--model", str(out / "model.pth"), *files, "--heatmaps", str(heat), "--csv", str(csv)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(line.split(": ")[1].split()[0] in ("macula", "tumor", "ulcer") for line in lines)
    assert len(list(heat.glob("*_gradcam.png"))) == 3
    table = pd.read_csv(csv)
    assert list(table.columns) == ["image", "prediction", "macula", "tumor", "ulcer"]
    assert abs(table[["macula", "tumor", "ulcer"]].sum(axis=1) - 1).max() < 1e-5
    assert main(["predict", "--model", str(out / "model.pth"), files[0], str(tmp_path / "bad.png")]) == 3
    assert "bad.png: error" in capsys.readouterr().err
    # field of view, two passes: the full view's and the crop's probabilities averaged
    csv2 = tmp_path / "p2.csv"
    assert main(["predict", "--model", str(out / "model.pth"), *files, "--two-pass", "average", "--csv", str(csv2)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all("[two-pass average: full view" in line for line in lines)
    two = pd.read_csv(csv2)
    assert list(two.columns) == ["image", "prediction", "full_view", "crop_box", "macula", "tumor", "ulcer"]
    assert abs(two[["macula", "tumor", "ulcer"]].sum(axis=1) - 1).max() < 1e-5
    boxes = [list(map(int, b.split())) for b in two["crop_box"]]
    assert all(0 <= x0 < x1 <= 40 and 0 <= y0 < y1 <= 40 for x0, y0, x1, y1 in boxes)  # in the 40-px files' pixels
    assert not (two[["macula", "tumor", "ulcer"]].values == table[["macula", "tumor", "ulcer"]].values).all()
    # --crop-region peak reaches two_pass_predict, and each box is the one it draws
    import dermlearn.transforms
    from dermlearn.data.decode import image_item, load_image

    real, regions = dermlearn.transforms.two_pass_predict, []
    def spy(*args, **kwargs):
        regions.append(kwargs.get("region"))
        return real(*args, **kwargs)
    monkeypatch.setattr(dermlearn.transforms, "two_pass_predict", spy)
    csv3 = tmp_path / "p3.csv"
    assert main(["predict", "--model", str(out / "model.pth"), *files, "--two-pass", "average", "--crop-region", "peak", "--csv", str(csv3)]) == 0
    assert regions == ["peak"] * 3
    learn = dl.load_learner(out / "model.pth")
    want = [real(learn, image_item(f, learn.input_size), source=load_image(f), region="peak")[3] for f in files]
    assert [tuple(map(int, b.split())) for b in pd.read_csv(csv3)["crop_box"]] == want


def test_train_from_local_pretrained_weights_freezes_first(tmp_path, monkeypatch, capsys):
    import torch
    import torchvision

    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    imgs = _folder(tmp_path, n=60)
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    assert main(["train", "--data", str(imgs), "--arch", "resnet18", "--pretrained", str(tmp_path / "r18.pth"), "--size", "32",
                 "--bs", "16", "--head-cycles", "1", "--cycles", "1", "--lr", "1e-3", "--out", str(tmp_path / "o"), "--no-bar"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "head: fit_sgdr(1, 1, lr_max=1.00e-03" in text and "slice(1.00e-05, 1.00e-04)" in text


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "t.csv").write_text("img,dx\na.png,x\n")
    assert main(["lr-find", "--data", str(tmp_path / "t.csv"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "missing column(s) ['image', 'label']" in err and "'img'" in err
    assert main(["predict", "--model", str(tmp_path / "m.pth"), str(tmp_path)]) == 2
    assert "no model file" in capsys.readouterr().err


def test_experiment_subcommand_quick(tmp_path, monkeypatch, capsys):
    from .conftest import require_data

    require_data("pad-ufes-20", "labels.csv")
    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    assert main(["experiment", "photometric", "--quick", "--out", str(tmp_path / "res")]) == 0
    assert (tmp_path / "res" / "results.md").read_text().startswith("| model |") and "| model |" in capsys.readouterr().out
    import pandas as pd

    table = pd.read_csv(tmp_path / "res" / "results.csv")
    assert len(table) == 10 and table["accuracy"].between(0, 1).all()
    clean = table[(table["validation images"] == "clean") & (table["correction"] == "none")]["accuracy"].item()
    degraded = table[(table["validation images"] == "degraded") & (table["correction"] == "none")]["accuracy"].item()
    assert degraded <= clean  # the degradation is real
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "dermlearn", "experiment", "nope"], capture_output=True, text=True)
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_architectures_and_cifar_speedup_experiments_quick(tmp_path, monkeypatch):
    import pandas as pd

    from dermlearn.experiments import architectures, cifar_speedup

    from .conftest import require_data

    require_data("pad-ufes-20", "labels.csv")
    require_data("cifar10.tar.gz")
    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    assert architectures.main(["--quick", "--archs", "simple_cnn", "--out", str(tmp_path / "a")]) == 0
    t = pd.read_csv(tmp_path / "a" / "results.csv")
    assert list(t["architecture"]) == ["simple_cnn"] and t["epochs"].item() >= 1
    hist = pd.read_csv(tmp_path / "a" / "history.csv")
    assert set(hist["phase"]) == {"all"} and len(hist) == t["epochs"].item()
    # early stopping restores the epoch of the lowest validation loss: the table reports its accuracy
    assert t["top1"].item() == pytest.approx(hist.loc[hist["valid_loss"].idxmin(), "accuracy"], abs=1e-6)
    assert cifar_speedup.main(["--quick", "--archs", "simple_cnn", "--per-class", "100", "--valid-per-class", "20",
                               "--target", "0.2", "--max-epochs", "3", "--out", str(tmp_path / "c")]) == 0  # fmt: skip
    c = pd.read_csv(tmp_path / "c" / "results.csv")
    assert {"baseline_acc", "recipe_acc", "baseline_time_s", "recipe_time_s", "eta"} <= set(c.columns)
    if c["baseline_time_s"].notna().item() and c["recipe_time_s"].notna().item():
        assert abs(c["eta"].item() - c["baseline_time_s"].item() / c["recipe_time_s"].item()) < 1e-9
    assert (tmp_path / "c" / "results.md").read_text().startswith("| architecture |")


def _config(path):
    import json

    cfg = json.loads((path / "config.json").read_text())
    for key in ("experiment", "seed", "data", "commit", "torch", "wall_s", "started"):
        assert key in cfg, key
    assert cfg["wall_s"] > 0 and (cfg["commit"] == "unknown" or len(cfg["commit"].split("+")[0]) == 40)
    return cfg


def test_mitigation_experiment_quick(tmp_path, monkeypatch, capsys):
    import pandas as pd

    from dermlearn.experiments.mitigation import ARMS, moved_pairs, pair_counts, paired_differences

    from .conftest import require_data

    # the pair bookkeeping on a known matrix: errors a->b and b->a add up; moves are signed
    cm = np.array([[5, 2, 0], [1, 4, 3], [0, 0, 6]])
    assert pair_counts(cm, ["a", "b", "c"]) == {"a / b": 3, "a / c": 0, "b / c": 3}
    assert moved_pairs({"a / b": 3, "b / c": 3}, {"a / b": 1, "b / c": 4}) == "a / b -2, b / c +1"
    assert moved_pairs({"a / b": 3}, {"a / b": 3}) == "-"
    # paired differences: per seed against the first arm, whatever the row order of runs.csv
    runs = pd.DataFrame({"seed": [3, 3, 1, 1], "arm": ["base", "x", "x", "base"],
                         "accuracy": [0.5, 0.6, 0.4, 0.45], "balanced accuracy": [0.3, 0.3, 0.5, 0.2],
                         "AUC": [0.7, 0.8, 0.9, 0.6], "errors": [5, 4, 6, 5]})  # fmt: skip
    d = paired_differences(runs).set_index("arm").loc["x"]
    assert d["Δ accuracy"] == pytest.approx((0.1 - 0.05) / 2) and d["accuracy per seed"] == "-0.050 +0.100"
    assert d["accuracy higher"] == 1 and d["balanced accuracy higher"] == 1 and d["AUC higher"] == 2 and d["seeds"] == 2
    assert d["Δ balanced accuracy"] == pytest.approx(0.15)

    require_data("pad-ufes-20", "labels.csv")
    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "mit"
    assert main(["experiment", "mitigation", "--quick", "--out", str(out)]) == 0
    table = pd.read_csv(out / "results.csv")
    assert list(table["arm"]) == list(ARMS) and "accuracy sd" not in table  # one seed: no spread to report
    assert table["accuracy"].between(0, 1).all() and table["balanced accuracy"].between(0, 1).all() and table["AUC"].between(0, 1).all()
    pairs = pd.read_csv(out / "pairs.csv").drop(columns="seed").set_index("arm")
    assert (pairs.sum(axis=1).astype(int) == table.set_index("arm")["errors"]).all()  # every error is in one pair
    assert _config(out)["n_valid"] == [116]
    hist = pd.read_csv(out / "history.csv")
    assert set(hist["arm"]) == set(ARMS) and len(hist) == 3 * len(ARMS)  # 3 epochs per arm
    assert (out / "results.png").stat().st_size > 5000
    assert "| arm | accuracy |" in capsys.readouterr().out

    # several seeds: the table is the mean (and sd) of the per-seed rows in runs.csv
    two = tmp_path / "mit2"
    arms = ["balance: loss-weighted 1/sqrt(n)"]
    assert main(["experiment", "mitigation", "--quick", "--epochs", "1", "--seeds", "0", "3", "--arms", *arms, "--out", str(two)]) == 0
    runs = pd.read_csv(two / "runs.csv")
    assert sorted(runs["seed"].unique()) == [0, 3] and len(runs) == 4
    table = pd.read_csv(two / "results.csv").set_index("arm")
    for arm, rows in runs.groupby("arm"):
        assert table.loc[arm, "accuracy"] == pytest.approx(rows["accuracy"].mean())
        assert table.loc[arm, "accuracy sd"] == pytest.approx(np.std(rows["accuracy"], ddof=1))
        assert table.loc[arm, "AUC sd"] == pytest.approx(np.std(rows["AUC"], ddof=1))
        assert table.loc[arm, "errors"] == pytest.approx(rows["errors"].mean())
    assert len(pd.read_csv(two / "history.csv")) == 4 and _config(two)["seeds"] == [0, 3]
    paired = pd.read_csv(two / "paired.csv").set_index("arm")
    base = runs[runs["arm"] == "baseline (none)"].set_index("seed")["AUC"]
    arm_auc = runs[runs["arm"] == arms[0]].set_index("seed")["AUC"]
    assert paired.loc[arms[0], "Δ AUC"] == pytest.approx((arm_auc - base).mean())
    assert "| arm | Δ accuracy |" in (two / "paired.md").read_text()
    with pytest.raises(SystemExit):
        main(["experiment", "mitigation", "--quick", "--seeds", "1", "1", "--out", str(two)])


def test_analysis_experiment_trains_then_reuses_the_model(tmp_path, monkeypatch, capsys):
    import pandas as pd

    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    imgs = _folder(tmp_path)
    first = tmp_path / "a1"
    assert main(["experiment", "analysis", "--quick", "--data", str(imgs), "--size", "32", "--min-count", "1",
                 "--out", str(first)]) == 0  # fmt: skip
    for f in ("confusion.png", "confusion_normalized.png", "report.csv", "leading_pairs.md", "results.md", "history.csv", "model.pth",
              "lr_find.png"):  # fmt: skip
        assert (first / f).is_file(), f
    cfg = _config(first)
    # the rate it trained at is recorded: the range test's valley
    assert cfg["lr"] == pytest.approx(cfg["lr_find"]["valley"])
    assert cfg["epochs"] == len(pd.read_csv(first / "history.csv")) >= 1
    pairs = pd.read_csv(first / "results.csv")
    assert list(pairs.columns) == ["label 1", "label 2", "count"] and (pairs["count"] >= 1).all()
    assert len(list(first.glob("gallery_*.png"))) == min(3, len(pairs))
    capsys.readouterr()
    second = tmp_path / "a2"
    assert main(["experiment", "analysis", "--data", str(imgs), "--model", str(first / "model.pth"), "--min-count", "1",
                 "--out", str(second)]) == 0  # fmt: skip
    assert _config(second)["accuracy"] == pytest.approx(cfg["accuracy"])  # the same model on the same split
    assert not (second / "model.pth").exists() and not (second / "history.csv").exists() and "lr" not in _config(second)
    assert main(["experiment", "analysis", "--data", str(tmp_path / "nope"), "--out", str(second)]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_quick_changes_defaults_but_explicit_options_win():
    import argparse

    from dermlearn.experiments.options import QUICK_FIT, add_fit_args, parse_args

    def parser():
        ap = argparse.ArgumentParser()
        add_fit_args(ap)
        return ap

    assert (parse_args(parser(), [], QUICK_FIT).arch, parse_args(parser(), [], QUICK_FIT).epochs) == ("resnet18", 8)
    quick = parse_args(parser(), ["--quick"], QUICK_FIT)
    assert (quick.arch, quick.size, quick.epochs) == ("simple_cnn", 64, 3)
    mixed = parse_args(parser(), ["--quick", "--epochs", "5", "--size", "96"], QUICK_FIT)  # 96 is also the default
    assert (mixed.arch, mixed.size, mixed.epochs) == ("simple_cnn", 96, 5)
    with pytest.raises(ValueError, match="max_epoch"):
        parse_args(parser(), ["--quick"], {"max_epoch": 3})


def test_git_commit_is_dirty_only_for_changes_to_the_package(tmp_path):
    import shutil

    from dermlearn.experiments.record import git_commit

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    assert git_commit(tmp_path) == "unknown"
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "docs").mkdir()
    (repo / "pkg" / "a.py").write_text("x = 1\n")
    (repo / "docs" / "results.md").write_text("| a |\n")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "c"]):
        subprocess.run(["git", *cmd], cwd=repo, check=True, env={**os.environ, **env})
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert git_commit(repo / "pkg") == sha
    (repo / "docs" / "results.md").write_text("| b |\n")  # an experiment rewrote its committed table
    assert git_commit(repo / "pkg") == sha
    (repo / "pkg" / "a.py").write_text("x = 2\n")
    assert git_commit(repo / "pkg") == sha + "+dirty"


@pytest.mark.parametrize("rows", [2, 13])
def test_result_bar_plot_legend_clears_the_axis_label(rows):
    """The legend below the bars must not cover the x label, on short and on tall figures."""
    import matplotlib.pyplot as plt  # conftest selects the Agg backend
    import pandas as pd

    from dermlearn.experiments.plots import plot_bars

    table = pd.DataFrame({"arm": [f"arm {i}" for i in range(rows)], "a": np.linspace(0.2, 0.9, rows),
                          "b": np.linspace(0.1, 0.8, rows)})  # fmt: skip
    fig = plot_bars(table, "arm", ["a", "b"], "title")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    legend_artist = fig.legends[0] if fig.legends else ax.get_legend()
    label, legend = ax.xaxis.label.get_window_extent(renderer), legend_artist.get_window_extent(renderer)
    ticks = ax.xaxis.get_tightbbox(renderer)
    plt.close(fig)
    assert legend.y1 <= label.y0, "legend overlaps the x label"
    assert legend.y1 <= ticks.y0 and legend.y0 >= 0, "legend overlaps the tick labels or leaves the figure"
    assert label.y0 - legend.y1 < 30, "gap of more than 30 px between the x label and the legend"


def _untrained_model_file(tmp_path, size: int = 32):
    """An exported simple CNN on three synthetic classes, untrained (predictions are then
    arbitrary but deterministic): enough for the output-file tests."""
    torch.manual_seed(0)
    dls = dl.synthetic_dataloaders(n=30, size=size, n_classes=3, bs=10, seed=0)
    learn = dl.Learner(dls, dl.create_model("simple_cnn", 3), progress=False, device="cpu")
    return learn.export(tmp_path / "model.pth")


def test_output_names_never_collide():
    from pathlib import Path

    from dermlearn.cli import output_names

    files = [Path("x/a/img.png"), Path("x/b/img.png"), Path("x/b/other.jpg"), Path("y/a/img.png")]
    assert output_names(files, "_gradcam.png") == [Path("x/a/img_gradcam.png"), Path("b/img_gradcam.png"),
                                                   Path("other_gradcam.png"), Path("y/a/img_gradcam.png")]  # fmt: skip
    assert output_names([Path("one.png")], ".png") == [Path("one.png")]
    with pytest.raises(ValueError, match="given twice"):
        output_names([Path("a/img.png"), Path("a/../a/img.png")], ".png")


def test_predict_heatmaps_of_same_named_files_do_not_overwrite(tmp_path, capsys):
    """a/img.png and b/img.png each get their heatmap (one used to overwrite the other), and
    a rerun says which files it replaces."""
    from PIL import Image

    model = _untrained_model_file(tmp_path)
    rng = np.random.default_rng(0)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.fromarray(rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)).save(tmp_path / folder / "img.png")
    heat = tmp_path / "heat"
    args = ["predict", "--model", str(model), str(tmp_path / "a" / "img.png"), str(tmp_path / "b"), "--heatmaps", str(heat)]
    assert main(args) == 0
    written = sorted(p.relative_to(heat).as_posix() for p in heat.rglob("*.png"))
    assert written == ["a/img_gradcam.png", "b/img_gradcam.png"]
    assert (heat / "a" / "img_gradcam.png").read_bytes() != (heat / "b" / "img_gradcam.png").read_bytes()
    assert "replacing" not in capsys.readouterr().err
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"replacing {heat / 'a' / 'img_gradcam.png'}" in err and f"replacing {heat / 'b' / 'img_gradcam.png'}" in err


def test_photo_heatmap_is_drawn_on_the_photo_with_its_aspect(tmp_path):
    """The heatmap figure shows the photo at its own aspect, the map placed on the square
    the model sees, a colour bar, the file name and each panel's class and probability."""
    from PIL import Image

    from dermlearn.data.decode import presize_image
    from dermlearn.interpret.photo_heatmap import model_view_box, plot_photo_heatmap

    # the box is the square presize_image keeps: 300x200 at 32 px -> 48x32, crop 8..40
    assert model_view_box(300, 200, 32) == (50.0, 0.0, 250.0, 200.0)
    assert model_view_box(200, 300, 32) == (0.0, 50.0, 200.0, 250.0)
    photo = Image.fromarray(np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8))
    # on a smooth photo (PIL's block reduction aligns to the image origin, so noise differs
    # by a few levels), the box cut from the photo is what the model sees
    yy, xx = np.mgrid[0:200, 0:300]
    smooth = Image.fromarray(np.stack([xx * 0.8, yy * 1.2, (xx + yy) * 0.5], -1).astype(np.uint8))
    box = tuple(round(v) for v in model_view_box(*smooth.size, 32))
    assert (presize_image(smooth.crop(box), 32).int() - presize_image(smooth, 32).int()).abs().max() <= 1
    m1, m2 = torch.rand(32, 32), torch.rand(32, 32)
    fig = plot_photo_heatmap(photo, [("predicted: tumor 0.612", m1), ("runner-up: ulcer 0.301", m2)], title="lesions/p1.jpg")
    photo_ax, ax1, ax2, bar = fig.axes
    assert photo_ax.get_images()[0].get_array().shape == (200, 300, 3)
    assert photo_ax.get_xlim() == (0, 300) and photo_ax.get_ylim() == (200, 0)
    overlay = ax1.get_images()[1]
    assert overlay.get_extent() == [50.0, 250.0, 200.0, 0.0] and overlay.get_array().shape == (32, 32)
    np.testing.assert_array_equal(ax2.get_images()[1].get_array(), m2.numpy())
    assert "Grad-CAM" in bar.get_ylabel() and "lesions/p1.jpg" in fig._suptitle.get_text()
    assert [ax1.get_title(), ax2.get_title()] == ["predicted: tumor 0.612", "runner-up: ulcer 0.301"]
    assert len(ax1.patches) == 1  # the model's square is outlined: the photo is wider
    big = Image.new("RGB", (3008, 2000))
    fig = plot_photo_heatmap(big, [("p", m1)], title="big.jpg")
    assert fig.axes[0].get_images()[0].get_array().shape == (1064, 1600, 3)  # drawn at 1600 px, aspect kept
    with pytest.raises(ValueError, match="square"):
        plot_photo_heatmap(photo, [("p", torch.rand(32, 16))], title="x")


def test_pair_gallery_titles_give_the_confusion_counts(tmp_path):
    """A gallery's title gives the pair's counts from the confusion matrix and how many cases
    it shows; leading_pairs.md says its count sums both directions."""
    from dermlearn.interpret import write_interpretation

    vocab = ["MEL", "NEV", "BCC"]
    targets = torch.tensor([0] * 12 + [1] * 12 + [2] * 4)
    preds = torch.tensor([0] * 11 + [1] + [0] * 9 + [1] * 3 + [2] * 4)  # 9 NEV->MEL, 1 MEL->NEV
    probs = torch.nn.functional.one_hot(preds, 3).float() * 0.8 + 0.2 / 3
    interp = dl.Interpretation(probs, targets, torch.rand(len(targets)), vocab)
    assert interp.pair_gallery_title("NEV", "MEL", 3, 1) == (
        "NEV vs MEL: 10 errors (9 NEV->MEL, 1 MEL->NEV); shown: 3 NEV->MEL and 1 MEL->NEV, highest loss first")
    write_interpretation(interp, tmp_path, min_count=5, n_pairs=0, bootstrap=0, log=lambda m: None)
    text = (tmp_path / "leading_pairs.md").read_text()
    assert text.startswith("| label 1 | label 2 | count | 1 -> 2 | 2 -> 1 |\n|---|---|---|---|---|\n| NEV | MEL | 10 | 9 | 1 |\n")
    assert "count sums both directions" in text


def test_unreadable_images_point_to_the_cli_flag(tmp_path, monkeypatch, capsys):
    """The error for unreadable images named skip_bad=True, a Python argument the command
    line did not have; --skip-bad now drops them with a warning."""
    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    imgs = _folder(tmp_path, n=30)
    (imgs / "macula" / "zz_bad.png").write_text("not an image")
    args = ["train", "--data", str(imgs), "--arch", "simple_cnn", "--size", "24", "--bs", "8", "--cycles", "1",
            "--lr", "1e-3", "--out", str(tmp_path / "o"), "--no-bar"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "zz_bad.png" in err and "--skip-bad on the command line" in err
    with pytest.warns(UserWarning, match="dropped 1 unreadable image file"):
        assert main([*args, "--skip-bad"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^0 +\d", out, flags=re.M)  # --no-bar keeps the epoch table


def test_damaged_model_file_message_is_whole(tmp_path, capsys):
    model = _untrained_model_file(tmp_path)
    data = model.read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 2])
    assert main(["predict", "--model", str(tmp_path / "trunc.pth"), str(model)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith(".") and f"({len(data) // 2:,} bytes)" in err
    assert "truncated or corrupted" in err and "torch says: RuntimeError: PytorchStreamReader failed" in err


def test_train_at_28px_uses_the_small_stem_and_interpret_maps_are_spatial(tmp_path, monkeypatch, capsys):
    """At 28 px the CLI picks the small-image stem (ImageNet's leaves a 1x1 map) and the
    interpretation's Grad-CAM gallery shows maps with structure."""
    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    imgs = _folder(tmp_path, n=60)
    out = tmp_path / "out"
    assert main(["train", "--data", str(imgs), "--arch", "resnet18", "--size", "28", "--bs", "16", "--cycles", "1",
                 "--lr", "3e-3", "--out", str(out), "--no-bar"]) == 0  # fmt: skip
    assert "resnet18 with the small-image stem" in capsys.readouterr().out
    learn = dl.load_learner(out / "model.pth")
    assert learn.meta["stem"] == "small" and learn.input_size == 28
    x = learn.dls.apply(learn.load_item(sorted(imgs.rglob("*.png"))[0])[None], training=False)
    assert learn.model.body(x).shape[-2:] == (4, 4)
    cam = dl.GradCAM(learn.model)(x, "top1").maps
    assert float(cam.flatten(1).std(1)[0]) > 0
    assert main(["train", "--data", str(imgs), "--arch", "resnet18", "--size", "28", "--stem", "imagenet", "--bs", "16",
                 "--cycles", "1", "--lr", "3e-3", "--out", str(tmp_path / "big"), "--no-bar"]) == 0  # fmt: skip
    assert dl.load_learner(tmp_path / "big" / "model.pth").meta["stem"] == "imagenet"
    res = tmp_path / "interp"
    assert main(["interpret", "--model", str(out / "model.pth"), "--data", str(imgs), "--out", str(res), "--min-count", "1",
                 "--bootstrap", "0"]) == 0  # fmt: skip
    assert list(res.glob("gallery_*.png"))


def test_result_configs_record_relative_paths(tmp_path, monkeypatch):
    """config.json recorded absolute temporary folders in "out"; it now records the path
    relative to the current folder, or "." (the results' own folder) outside it."""
    import json

    import pandas as pd

    from dermlearn.experiments.record import Record

    monkeypatch.chdir(tmp_path)
    for out, want in ((tmp_path / "runs" / "a", "runs/a"), ("runs/b", "runs/b"), (tmp_path.parent / "elsewhere", ".")):
        rec = Record("x", out, {"out": str(out), "seed": 0})
        rec.finish(pd.DataFrame({"a": [1]}))
        assert json.loads((Path(out) / "config.json").read_text())["out"] == want
    shipped = [json.loads(p.read_text()) for p in (REPO_ROOT / "docs" / "results").glob("*/config.json")]
    assert shipped and not [c["out"] for c in shipped if str(c.get("out", "")).startswith("/")]
