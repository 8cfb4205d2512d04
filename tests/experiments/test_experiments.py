"""dermlearn experiment NAME: quick runs, their records and plots."""


from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dermlearn.cli import main
from tests.helpers import REPO as REPO_ROOT
from tests.helpers import image_folder


def _config(path):
    import json

    cfg = json.loads((path / "config.json").read_text())
    for key in ("experiment", "seed", "data", "commit", "torch", "wall_s", "started"):
        assert key in cfg, key
    assert cfg["wall_s"] > 0 and (cfg["commit"] == "unknown" or len(cfg["commit"].split("+")[0]) == 40)
    return cfg


def test_experiment_subcommand_quick(public_data_cache, tmp_path, monkeypatch, capsys):
    from tests.helpers import require_data

    require_data("pad-ufes-20", "labels.csv")
    assert main(["experiment", "photometric", "--quick", "--out", str(tmp_path / "res")]) == 0
    assert (tmp_path / "res" / "results.md").read_text().startswith("| model |") and "| model |" in capsys.readouterr().out
    import pandas as pd

    table = pd.read_csv(tmp_path / "res" / "results.csv")
    assert len(table) == 10 and table["accuracy"].between(0, 1).all()
    clean = table[(table["validation images"] == "clean") & (table["correction"] == "none")]["accuracy"].item()
    degraded = table[(table["validation images"] == "degraded") & (table["correction"] == "none")]["accuracy"].item()
    assert degraded <= clean  # the degradation is real
    import subprocess

    r = subprocess.run([sys.executable, "-m", "dermlearn", "experiment", "nope"], capture_output=True, text=True)
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_architectures_and_cifar_speedup_experiments_quick(public_data_cache, tmp_path, monkeypatch):
    import pandas as pd

    from dermlearn.experiments import architectures, cifar_speedup
    from tests.helpers import require_data

    require_data("pad-ufes-20", "labels.csv")
    require_data("cifar10.tar.gz")
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


def test_mitigation_experiment_quick(public_data_cache, tmp_path, monkeypatch, capsys):
    import pandas as pd

    from dermlearn.experiments.mitigation import ARMS, MAIN_ARMS, STUDY_GAMMA
    from tests.helpers import require_data

    # the study's "gamma 1.2-1.5 lifts shadows" is a display gamma: in dermlearn's convention it brightens (< 1)
    assert STUDY_GAMMA == pytest.approx(1 / 1.35) and set(MAIN_ARMS) <= set(ARMS)
    require_data("pad-ufes-20", "labels.csv")
    out = tmp_path / "mit"
    arms = ["balance: loss-weighted 1/sqrt(n)", "FoV: lesion crop"]
    assert main(["experiment", "mitigation", "--quick", "--epochs", "2", "--size", "48", "--seeds", "0", "3", "--arms", *arms,
                 "--patience", "0", "--min-epochs", "2", "--out", str(out)]) == 0  # fmt: skip
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs["seed"].unique()) == [0, 3] and len(runs) == 6
    # each seed: its own three-way split by patient, every arm of the seed on the same one
    assert (runs[["train", "valid", "test"]].sum(axis=1) == 686).all() and (runs["test"] > 100).all()
    table = pd.read_csv(out / "results.csv").set_index("arm")
    assert list(table.index) == ["baseline (none)", *arms]
    cfg = _config(out)
    ratio = cfg["test_train_ratio"]
    assert ratio == pytest.approx(runs["test"].sum() / (runs["train"] + runs["valid"]).sum())
    for arm, rows in runs.groupby("arm"):
        # test scores (scored once), not the validation scores the early stopping chose on
        assert table.loc[arm, "ACC"] == pytest.approx(rows["acc"].mean())
        assert table.loc[arm, "errors"] == pytest.approx(rows["errors"].mean())
        assert (rows["errors"] == (rows["test"] * (1 - rows["acc"])).round()).all()
        assert (rows["best_epoch"] < rows["epochs_run"]).all() and (rows["epochs_run"] == 2).all()  # patience 0, yet 2 epochs
    paired = pd.read_csv(out / "paired.csv").set_index(["arm", "score"])
    d = runs.pivot(index="seed", columns="arm", values="auc")
    diff = d[arms[0]] - d["baseline (none)"]
    row = paired.loc[(arms[0], "AUC")]
    assert row["difference"] == pytest.approx(diff.mean())
    # the corrected interval is the plain t interval widened by sqrt(1 + J * n_test / n_train)
    widen = np.sqrt(1 + 2 * ratio)
    assert row["high"] - row["difference"] == pytest.approx((row["t high"] - row["difference"]) * widen)
    assert "| arm |" in (out / "pairs.md").read_text() and (out / "results.png").stat().st_size > 5000
    hist = pd.read_csv(out / "history.csv")
    assert len(hist) == runs["epochs_run"].sum()
    assert "| arm | seeds | ACC |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["experiment", "mitigation", "--quick", "--seeds", "1", "1", "--out", str(out)])
    with pytest.raises(SystemExit):  # a test share that leaves no training set
        main(["experiment", "mitigation", "--quick", "--test-pct", "0.9", "--out", str(out)])


def test_analysis_experiment_trains_then_reuses_the_model(tmp_path, monkeypatch, capsys):
    import pandas as pd

    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    imgs = image_folder(tmp_path)
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
