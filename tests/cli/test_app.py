"""The command: help, exit codes, one-line errors."""


from __future__ import annotations

import re
import subprocess
import sys

import pytest

from dermlearn.cli import main
from tests.helpers import image_folder, untrained_model_file


def test_help_and_exit_codes():
    r = subprocess.run([sys.executable, "-m", "dermlearn", "demo", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--quick" in r.stdout and "--confounders" in r.stdout
    r = subprocess.run([sys.executable, "-m", "dermlearn"], capture_output=True, text=True)
    assert r.returncode == 2
    r = subprocess.run([sys.executable, "-m", "dermlearn", "demo", "--n", "abc"], capture_output=True, text=True)
    assert r.returncode == 2 and "invalid int value" in r.stderr


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "t.csv").write_text("img,dx\na.png,x\n")
    assert main(["lr-find", "--data", str(tmp_path / "t.csv"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "missing column(s) ['image', 'label']" in err and "'img'" in err
    assert main(["predict", "--model", str(tmp_path / "m.pth"), str(tmp_path)]) == 2
    assert "no model file" in capsys.readouterr().err


def test_unreadable_images_point_to_the_cli_flag(tmp_path, monkeypatch, capsys):
    """The error for unreadable images named skip_bad=True, a Python argument the command
    line did not have; --skip-bad now drops them with a warning."""
    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    imgs = image_folder(tmp_path, n=30)
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
    model = untrained_model_file(tmp_path)
    data = model.read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 2])
    assert main(["predict", "--model", str(tmp_path / "trunc.pth"), str(model)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith(".") and f"({len(data) // 2:,} bytes)" in err
    assert "truncated or corrupted" in err and "torch says: RuntimeError: PytorchStreamReader failed" in err
