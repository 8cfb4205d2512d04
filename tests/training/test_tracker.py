"""Early stopping and save-best, driven by scripted metric values."""

from __future__ import annotations

import os
import stat

import pytest
import torch

import dermlearn as dl
from tests.helpers import tiny_learner


class Scripted:
    """A metric returning the next value of a list at each validation."""

    __name__ = "score"

    def __init__(self, values):
        self.values, self.i = list(values), 0

    def __call__(self, preds, targs):
        v = self.values[self.i]
        self.i += 1
        return torch.tensor(v)


def test_early_stopping_patience_mode_and_reason():
    es = dl.EarlyStopping(monitor="score", patience=1)
    assert es.mode == "max"
    learn = tiny_learner(metrics=[Scripted([0.5, 0.6, 0.6, 0.55, 0.9, 0.9])], cbs=[es])
    learn.fit(6)
    # best 0.6 at epoch 1; epochs 2 and 3 do not improve -> stop after epoch 3
    assert len(learn.recorder.values) == 4
    assert es.stopped_epoch == 3 and es.best == pytest.approx(0.6) and es.best_epoch == 1
    assert "score did not improve" in es.stop_reason and "epoch 1" in es.stop_reason


def test_early_stopping_waits_for_min_epochs_but_tracks_the_best_from_the_first():
    # the first epoch scores best, then a one-cycle-like spike: without min_epochs the fit
    # stops after epoch 3 on the first epoch's weights; with min_epochs=6 it runs on and
    # the later epochs beat it
    scores = [1.7, 4.6, 2.1, 1.72, 1.86, 1.27, 1.26, 1.25]
    early = dl.EarlyStopping(monitor="score", mode="min", patience=2)
    tiny_learner(metrics=[Scripted(scores)], cbs=[early]).fit(8)
    assert early.stopped_epoch == 3 and early.best_epoch == 0
    late = dl.EarlyStopping(monitor="score", mode="min", patience=2, min_epochs=6)
    learn = tiny_learner(metrics=[Scripted(scores)], cbs=[late])
    learn.fit(8)
    assert late.stopped_epoch is None and late.best_epoch == 7 and len(learn.recorder.values) == 8
    # past min_epochs, patience applies as before; the best is the best of every epoch
    flat = dl.EarlyStopping(monitor="score", mode="min", patience=1, min_epochs=3)
    tiny_learner(metrics=[Scripted([1.0, 2.0, 2.0, 2.0, 2.0, 0.5])], cbs=[flat]).fit(6)
    assert flat.stopped_epoch == 2 and flat.best_epoch == 0
    with pytest.raises(ValueError, match="min_epochs"):
        dl.EarlyStopping(min_epochs=-1)


def test_min_delta_and_min_mode():
    es = dl.EarlyStopping(monitor="score", mode="min", min_delta=0.05, patience=0)
    learn = tiny_learner(metrics=[Scripted([1.0, 0.97, 0.5])], cbs=[es])
    learn.fit(3)
    assert es.stopped_epoch == 1  # 0.97 is not 0.05 better than 1.0


def test_restore_best_weights():
    snapshots = {}

    class Snap(dl.Callback):
        order = 70

        def after_epoch(self):
            snapshots[self.learn.epoch] = {k: v.clone() for k, v in self.learn.model.state_dict().items()}

    es = dl.EarlyStopping(monitor="score", patience=1, restore_best_weights=True)
    learn = tiny_learner(metrics=[Scripted([0.1, 0.9, 0.2, 0.3])], cbs=[Snap(), es])
    learn.fit(4, lr=1e-2)
    for k, v in learn.model.state_dict().items():
        assert torch.equal(v, snapshots[1][k])


def test_missing_monitor_lists_available():
    learn = tiny_learner(metrics=[dl.accuracy], cbs=[dl.EarlyStopping(monitor="acc")])
    with pytest.raises(ValueError, match=r"'acc'.*available.*'accuracy'"):
        learn.fit(1)


def test_save_model_callback_keeps_best_and_loads_it(tmp_path):
    snapshots = {}

    class Snap(dl.Callback):
        order = 59

        def after_epoch(self):
            snapshots[self.learn.epoch] = {k: v.clone() for k, v in self.learn.model.state_dict().items()}

    save = dl.SaveModelCallback(monitor="score", fname="best")
    learn = tiny_learner(metrics=[Scripted([0.2, 0.8, 0.4])], cbs=[Snap(), save], path=tmp_path)
    learn.fit(3, lr=1e-2)
    assert save.best_epoch == 1
    files = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert files == ["best.pth"]
    for k, v in learn.model.state_dict().items():
        assert torch.equal(v, snapshots[1][k])  # at_end loaded the best


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    from dermlearn.io import atomic_write

    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def bad(f):
        f.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, bad)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_atomic_write_gives_the_permissions_of_a_plain_write(tmp_path):
    from dermlearn.io import atomic_write_text

    old = os.umask(0o022)
    try:
        fresh = atomic_write_text("a", tmp_path / "new.json")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644  # readable by the team, as open() would make it
        os.umask(0o077)
        assert stat.S_IMODE(atomic_write_text("b", tmp_path / "private.json").stat().st_mode) == 0o600
        kept = tmp_path / "kept.json"
        kept.write_text("old")
        kept.chmod(0o640)
        atomic_write_text("new", kept)  # replacing a file keeps its mode
        assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and kept.read_text() == "new"
    finally:
        os.umask(old)


def test_bad_tracker_args():
    with pytest.raises(ValueError, match="mode"):
        dl.EarlyStopping(mode="up")
    with pytest.raises(ValueError, match="patience"):
        dl.EarlyStopping(patience=-1)


def _texts_inside(fig) -> list[str]:
    """The axes whose drawn extent (labels, tick labels, titles, legends) sticks out of the
    figure, by their labels."""
    fig.canvas.draw()
    r, box = fig.canvas.get_renderer(), fig.bbox
    out = []
    for ax in fig.axes:
        e = ax.get_tightbbox(r)
        if e.x0 < box.x0 - 0.5 or e.y0 < box.y0 - 0.5 or e.x1 > box.x1 + 0.5 or e.y1 > box.y1 + 0.5:
            out.append(f"{ax.get_xlabel()} / {ax.get_ylabel()}")
    return out


def test_training_plots_keep_their_labels_and_mark_what_was_used():
    """lr_find.png and lr.png cut their x labels; lr.png drew three identical group lines,
    of which one showed; lr_find.png did not mark the rate that training used."""
    from tests.helpers import tiny_learner

    learn = tiny_learner()
    res = learn.lr_find(num_it=30, show_plot=False)
    fig = res.plot(used=3e-3)
    assert _texts_inside(fig) == []
    used = [line for line in fig.axes[0].lines if line.get_label().startswith("used for training")]
    assert len(used) == 1 and used[0].get_xdata()[0] == 3e-3 and used[0].get_label() == "used for training: 3.00e-03"
    learn.fit(1, lr=1e-2)  # one rate for every group: one line
    fig = learn.recorder.plot_lr()
    assert _texts_inside(fig) == [] and [line.get_label() for line in fig.axes[0].lines] == ["groups 0, 1, 2"]
    learn.fit(1, lr=slice(1e-4, 1e-2))  # discriminative rates: a line per group
    fig = learn.recorder.plot_lr()
    assert [line.get_label() for line in fig.axes[0].lines] == ["group 0", "group 1", "group 2"]
    assert _texts_inside(learn.recorder.plot_loss()) == []
