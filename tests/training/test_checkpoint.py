"""Checkpoints: interrupted + resumed == uninterrupted, bit for bit; kills never corrupt."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import dermlearn as dl
from dermlearn.training.checkpoint import load_checkpoint


class StopAfter(dl.Callback):
    order = 80  # after the checkpoint is written

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def after_epoch(self):
        if self.learn.epoch == self.epoch:
            raise dl.CancelFitException()


def _synthetic(tmp_path):
    dls = dl.synthetic_dataloaders(n=96, size=32, n_classes=3, bs=16, seed=1)
    dl.set_seed(0)
    return dl.Learner(dls, dl.create_model("simple_cnn", 3), metrics=[dl.accuracy], progress=False, device="cpu",
                      cbs=[dl.Checkpoint(tmp_path / "ck.pth")])  # fmt: skip


def _dermdata(tmp_path, source="valid"):
    from tests.helpers import synthetic_folder

    if not (tmp_path / "imgs").exists():
        synthetic_folder(tmp_path / "imgs", n=60, size=40, n_classes=3)
    data = dl.DermData.from_folder(tmp_path / "imgs")
    dls = data.dls(bs=8, size=32, balance="dynamic", progress=False, cache_dir=False)  # augmentation + dynamic sampler
    dls.cbs = [dl.DynamicBalance(source=source)]
    dl.set_seed(0)
    return dl.Learner(dls, dl.create_model("simple_cnn", 3), metrics=[dl.accuracy], progress=False, device="cpu",
                      cbs=[dl.Checkpoint(tmp_path / "ck.pth"), dl.EarlyStopping(patience=5)])  # fmt: skip


def _history(learn):
    r = learn.recorder
    return [{k: v for k, v in row.items() if k != "time"} for row in r.values], r.losses, r.lrs


def _dermdata_train_recall(tmp_path):
    return _dermdata(tmp_path, source="train")


@pytest.mark.parametrize("make", [_synthetic, _dermdata, _dermdata_train_recall],
                         ids=["torch-dataloader", "dermdata-augment-dynamic", "dermdata-dynamic-train-recall"])  # fmt: skip
def test_interrupted_and_resumed_equals_uninterrupted(make, tmp_path):
    full = make(tmp_path)
    full.fit_sgdr(2, 1, lr_max=3e-3)  # 3 epochs
    part = make(tmp_path)
    part.fit_sgdr(2, 1, lr_max=3e-3, cbs=[StopAfter(1)])
    assert len(part.recorder.values) == 2 and load_checkpoint(tmp_path / "ck.pth")["epoch"] == 1
    resumed = make(tmp_path)  # a fresh process would start like this
    resumed.fit_sgdr(2, 1, lr_max=3e-3, resume=tmp_path / "ck.pth")
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert _history(full) == _history(resumed)
    if hasattr(full, "dynamic_balance"):
        assert full.dynamic_balance.history == resumed.dynamic_balance.history
        assert full.early_stopping.best == resumed.early_stopping.best


def test_resume_errors(tmp_path):
    learn = _synthetic(tmp_path)
    learn.fit(1)
    with pytest.raises(ValueError, match="1-epoch fit but this fit has 3 epochs"):
        learn.fit_sgdr(2, 1, resume=tmp_path / "ck.pth")
    learn.save(tmp_path / "plain.pth")
    with pytest.raises(ValueError, match="not a dermlearn checkpoint"):
        learn.fit(1, resume=tmp_path / "plain.pth")
    with pytest.raises(ValueError, match="every"):
        dl.Checkpoint(tmp_path / "x.pth", every=0)


SCRIPT = textwrap.dedent("""
    import sys, torch, dermlearn as dl
    dls = dl.synthetic_dataloaders(n=64, size=32, n_classes=3, bs=32, seed=0)
    learn = dl.Learner(dls, dl.create_model("resnet34", 3), progress=False, device="cpu",
                       cbs=[dl.Checkpoint(sys.argv[1])])
    print("ready", flush=True)
    learn.fit(1000, lr=1e-4)
""")


def test_kill_at_any_moment_leaves_the_last_checkpoint_intact(tmp_path):
    """resnet34 + Adam state is ~260 MB, so each write takes ~0.5 s. The test waits until a
    write is under way (its temporary file exists), kills the process with SIGKILL in the
    middle of it, and checks that the checkpoint under the final name is complete; then once
    more at an arbitrary moment."""
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    ck = tmp_path / "ck.pth"
    mid_write_kills = 0
    for mode, delay in (("mid-write", 0.05), ("mid-write", 0.2), ("anytime", 0.7)):
        proc = subprocess.Popen([sys.executable, str(script), str(ck)], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            t0 = time.time()
            while time.time() - t0 < 60:
                temps = list(tmp_path.glob(".ck.pth.*.tmp"))
                if (mode == "mid-write" and temps and ck.exists()) or (mode == "anytime" and ck.exists()):
                    break
                time.sleep(0.002)
            time.sleep(delay)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        if mode == "mid-write" and list(tmp_path.glob(".ck.pth.*.tmp")):
            mid_write_kills += 1  # the kill interrupted a write: its temporary file is left over
        state = load_checkpoint(ck)  # never a partial file under the final name
        assert state["format"] == "dermlearn-checkpoint" and state["epoch"] >= 0
        dl.create_model("resnet34", 3).load_state_dict(state["model"])
    assert mid_write_kills >= 1
    learn = dl.Learner(dl.synthetic_dataloaders(n=64, size=32, n_classes=3, bs=32, seed=0), dl.create_model("resnet34", 3),
                       progress=False, device="cpu", cbs=[dl.Checkpoint(ck)])  # fmt: skip
    learn.fit(1, lr=1e-4)  # the next write clears what the killed writers left behind
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".ck")) == []
