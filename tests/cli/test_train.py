"""dermlearn train and lr-find: options, reproducibility, corrections, end to end."""


from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import dermlearn as dl
from dermlearn.cli import main
from tests.helpers import image_folder


def _weights(path) -> dict[str, torch.Tensor]:
    return dl.load_learner(path).model.state_dict()


# every --balance choice, each with one --correct choice (hair: the slow one, with the
# fastest balancing), so that the five pairs of runs cover every option of both flags
REPRO = [("none", ["vignette"]), ("static", ["illumination"]), ("resample", ["hair"]),
         ("dynamic", ["colour"]), ("loss", ["gamma"])]  # fmt: skip


def test_loss_balancing_takes_the_weight_power(tmp_path, monkeypatch):
    import dermlearn as dl
    from dermlearn.cli.app import build_parser
    from dermlearn.cli.data_args import data_from_args
    from dermlearn.cli.learner_args import learner_for

    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    imgs = image_folder(tmp_path)
    rare = sorted(p for p in imgs.iterdir() if p.is_dir())[0]
    for f in sorted(rare.iterdir())[4:]:  # keep 4 images of the first class
        f.unlink()
    args = build_parser().parse_args(["train", "--data", str(imgs), "--arch", "simple_cnn", "--size", "32", "--balance", "loss",
                                      "--weight-power", "0.5", "--no-bar"])  # fmt: skip
    data = data_from_args(args)
    y = data.y[data.indices("train")]
    learn = learner_for(args, data)
    torch.testing.assert_close(learn.loss_func.weight, dl.inverse_frequency_weights(y, 3, power=0.5))
    assert learn.loss_func.weight[0] > learn.loss_func.weight[1]  # the rare class weighs more
    args.weight_power = 1.0
    torch.testing.assert_close(learner_for(args, data).loss_func.weight, dl.inverse_frequency_weights(y, 3))


def test_every_balancing_of_the_library_is_a_cli_choice():
    from dermlearn.cli.app import build_parser
    from dermlearn.data.dermdata import BALANCE

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    (balance,) = [a for a in train._actions if a.dest == "balance"]
    assert tuple(balance.choices) == BALANCE and balance.default in BALANCE


def test_reproducibility_cases_cover_every_option():
    from dermlearn.cli.app import build_parser
    from dermlearn.transforms import cli_steps

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    balance = next(a for a in train._actions if a.dest == "balance")
    assert sorted(b for b, _ in REPRO) == sorted(balance.choices)
    assert sorted(c for _, cs in REPRO for c in cs) == sorted(cli_steps())


@pytest.mark.parametrize(("balance", "correct"), REPRO, ids=[f"{b}-{'-'.join(c)}" for b, c in REPRO])
def test_train_twice_with_one_seed_gives_identical_weights(tmp_path, monkeypatch, capsys, balance, correct):
    """Two `dermlearn train` runs in one process (the global RNG moved on by the first) give
    bit-identical weights and the same LR-finder valley; another seed gives other weights.
    Without seeding, the initial weights followed the process's RNG."""
    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    imgs = image_folder(tmp_path, n=60)
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
    imgs = image_folder(tmp_path, n=60)
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
    imgs = image_folder(tmp_path)
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
    assert main(["train", "--data", str(imgs), "--correct", "sharpen", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "dermlearn train: error: --correct: no correction is called 'sharpen'; the corrections are" in err
    assert all(name in err for name in ("vignette", "hair", "illumination", "colour", "gamma"))


def test_train_interpret_predict_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    imgs = image_folder(tmp_path)
    out = tmp_path / "out"
    assert main(["train", "--data", str(imgs), "--arch", "simple_cnn", "--size", "32", "--bs", "16", "--cycles", "2",
                 "--out", str(out), "--no-bar"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "random init, all layers: fit_sgdr(2, 1" in text
    valley = float(re.search(r"valley=(\S+),", text).group(1))
    assert f"-> lr {valley:.2e}" in text  # from scratch the recipe trains at the range test's valley
    for f in ("model.pth", "model/model.safetensors", "model/config.json", "model/README.md", "run.toml", "history.csv",
              "loss.png", "lr_find.png"):
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
    # the model/ folder (safetensors, config.json, card) predicts as model.pth does
    csv_folder = tmp_path / "p_folder.csv"
    assert main(["predict", "--model", str(out / "model"), *files, "--csv", str(csv_folder)]) == 0
    capsys.readouterr()
    # (and in batches: the plain path predicts files in batches, the heatmap path one by one)
    batched = pd.read_csv(csv_folder)
    assert batched[["image", "prediction"]].equals(table[["image", "prediction"]])
    np.testing.assert_allclose(batched[["macula", "tumor", "ulcer"]], table[["macula", "tumor", "ulcer"]], rtol=0, atol=1e-6)
    assert "| balanced accuracy |" in (out / "model" / "README.md").read_text()
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
    import dermlearn.inference
    from dermlearn.data.decode import image_item, load_image

    real, regions = dermlearn.inference.two_pass_predict, []
    def spy(*args, **kwargs):
        regions.append(kwargs.get("region"))
        return real(*args, **kwargs)
    monkeypatch.setattr(dermlearn.inference, "two_pass_predict", spy)
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
    imgs = image_folder(tmp_path, n=60)
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    assert main(["train", "--data", str(imgs), "--arch", "resnet18", "--pretrained", str(tmp_path / "r18.pth"), "--size", "32",
                 "--bs", "16", "--head-cycles", "1", "--cycles", "1", "--lr", "1e-3", "--out", str(tmp_path / "o"), "--no-bar"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "head: fit_sgdr(1, 1, lr_max=1.00e-03" in text and "slice(1.00e-05, 1.00e-04)" in text


def test_train_at_28px_uses_the_small_stem_and_interpret_maps_are_spatial(tmp_path, monkeypatch, capsys):
    """At 28 px the CLI picks the small-image stem (ImageNet's leaves a 1x1 map) and the
    interpretation's Grad-CAM gallery shows maps with structure."""
    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    imgs = image_folder(tmp_path, n=60)
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


def test_train_logs_to_csv_and_tensorboard(tmp_path, monkeypatch):
    """--log csv tensorboard: one CSV row per epoch of both of the recipe's fits (head, then
    all layers) as history.csv has them, and TensorBoard event files with the same epochs."""
    pytest.importorskip("tensorboard", reason="tensorboard is not installed: pip install -e '.[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    imgs = image_folder(tmp_path, n=60)
    out = tmp_path / "out"
    assert main(["train", "--data", str(imgs), "--arch", "simple_cnn", "--size", "24", "--bs", "16", "--cycles", "1",
                 "--lr", "1e-2", "--log", "csv", "tensorboard", "--out", str(out), "--no-bar", "--seed", "3"]) == 0  # fmt: skip
    logged = pd.read_csv(out / "log.csv")
    history = pd.read_csv(out / "history.csv")
    assert len(logged) == len(history) > 0
    for k in ("train_loss", "valid_loss", "accuracy"):
        assert logged[k].tolist() == pytest.approx(history[k].tolist(), rel=1e-9), k
    hp = json.loads((out / "log_hparams.json").read_text())
    assert hp["seed"] == 3 and hp["command"] == "dermlearn train" and hp["arch"] == "simple_cnn"
    acc = EventAccumulator(str(out / "runs"), size_guidance={"scalars": 0})
    acc.Reload()
    assert len(acc.Scalars("epoch/valid_loss")) == len(history)
