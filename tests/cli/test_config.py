"""Run configs: --config reads a command's options from a file, the command line wins, bad
keys are named, and the run.toml every run writes reruns the run bit for bit."""

from __future__ import annotations

import pytest
import torch

from dermlearn.cli import main
from dermlearn.cli.app import build_parser
from dermlearn.cli.config import config_argv, expand_config, load_config
from tests.helpers import image_folder


def _train_parser():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices["train"]


def _parse(argv):
    parser = build_parser()
    return parser.parse_args(expand_config(argv, {"train": _train_parser()}))


def test_config_values_are_typed_and_the_command_line_wins(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('data = "pad-ufes-20"\narch = "resnet18"\nsize = 64\nweight-power = 0.5\n'
                   'correct = ["illumination", "gamma"]\nno_bar = true\nlog = []\n')  # fmt: skip
    args = _parse(["train", "--config", str(cfg), "--arch", "simple_cnn"])
    assert (args.arch, args.size, args.weight_power, args.correct, args.no_bar) == ("simple_cnn", 64, 0.5, ["illumination", "gamma"], True)
    assert args.data == "pad-ufes-20" and args.bs == 32  # not in the file: the default
    args = _parse(["train", f"--config={cfg}", "--correct", "colour"])
    assert args.correct == ["colour"] and args.arch == "resnet18"


def test_yaml_configs_read_like_toml(tmp_path):
    pytest.importorskip("yaml", reason="PyYAML is not installed")
    cfg = tmp_path / "run.yaml"
    cfg.write_text("data: dermamnist\nsize: 28\ncorrect: [gamma]\n")
    args = _parse(["train", "--config", str(cfg)])
    assert (args.data, args.size, args.correct) == ("dermamnist", 28, ["gamma"])


@pytest.mark.parametrize(("text", "message"), [
    ('archh = "resnet18"\n', "unknown option 'archh'; did you mean 'arch'?"),
    ('correct = "gamma"\n', "correct takes a list, got 'gamma'"),
    ('size = [28, 32]\n', "size takes one value, got [28, 32]"),
    ('no_bar = "yes"\n', "no_bar is a switch: true or false, got 'yes'"),
    ('[model]\narch = "resnet18"\n', "options are flat key = value pairs; model is a table"),
    ('arch = \n', "not valid TOML"),
])  # fmt: skip
def test_bad_configs_name_the_key(tmp_path, capsys, text, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    assert main(["train", "--data", "x", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dermlearn train: error: --config {cfg}: ") and message in err, err


def test_values_argparse_refuses_are_refused_as_on_the_command_line(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text('bs = "many"\nbalance = "always"\n')
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", "x", "--config", str(cfg)])
    assert e.value.code == 2 and "argument --bs: invalid int value: 'many'" in capsys.readouterr().err


def test_missing_and_unsupported_files(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "none.toml")]) == 2
    assert "none.toml: no such file" in capsys.readouterr().err
    (tmp_path / "run.ini").write_text("[x]\n")
    with pytest.raises(ValueError, match="expected a .toml, .yaml or .yml file"):
        load_config(tmp_path / "run.ini")
    with pytest.raises(ValueError, match="unknown option 'seeed'; did you mean 'seed'"):
        config_argv(_train_parser(), {"seeed": 1})


def _weights(path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def test_the_written_config_reruns_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    imgs = image_folder(tmp_path, n=60)
    first = tmp_path / "first"
    assert main(["train", "--data", str(imgs), "--arch", "simple_cnn", "--size", "24", "--bs", "16", "--cycles", "1",
                 "--num-it", "20", "--balance", "resample", "--correct", "illumination", "--seed", "5", "--no-bar",
                 "--out", str(first)]) == 0  # fmt: skip
    written = load_config(first / "run.toml")
    assert written["seed"] == 5 and written["correct"] == ["illumination"] and written["balance"] == "resample"
    assert written["data"] == str(imgs) and "config" not in written
    second = tmp_path / "second"
    assert main(["train", "--config", str(first / "run.toml"), "--out", str(second)]) == 0
    w1, w2 = _weights(first / "model.pth"), _weights(second / "model.pth")
    assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1)
    assert load_config(second / "run.toml") == {**written, "out": str(second)}
