"""dermlearn demo."""


from __future__ import annotations

import re

from dermlearn.cli import main


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


def test_demo_bad_value_is_one_line_error(capsys):
    assert main(["demo", "--quick", "--arch", "resnet35", "--out", "/tmp/x-dermlearn-bad"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dermlearn demo: error: unknown architecture 'resnet35'")
