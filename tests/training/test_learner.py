"""Learner: training works, predictions are right, save/load is safe, no per-batch sync."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import dermlearn as dl
from tests.helpers import REPO, tiny_learner
from tests.host_reads import count_host_reads, injected_read, is_dermlearn_file, tiny_fit


def lesion_learner(dls, **kw):
    torch.manual_seed(0)
    kw.setdefault("metrics", [dl.accuracy, dl.balanced_accuracy])
    return dl.Learner(dls, dl.create_model("simple_cnn", len(dls.vocab)), progress=False, device="cpu", **kw)


def test_fit_learns_synthetic_lesions(lesion_dls):
    learn = lesion_learner(lesion_dls)
    learn.fit_one_cycle(4, lr_max=3e-3)
    v = learn.recorder.values
    assert len(v) == 4 and [r["epoch"] for r in v] == [0, 1, 2, 3]
    assert v[-1]["train_loss"] < v[0]["train_loss"]
    assert v[-1]["accuracy"] > 0.6  # 4 classes: chance is 0.25
    assert len(learn.recorder.losses) == 4 * len(lesion_dls.train)


def test_get_preds_predict_and_losses(lesion_dls):
    learn = lesion_learner(lesion_dls)
    learn.fit(1, lr=3e-3)
    probs, targs, dec, losses, inputs = learn.get_preds(with_decoded=True, with_loss=True, with_input=True)
    n = len(lesion_dls.valid.dataset)
    assert probs.shape == (n, 4) and targs.shape == (n,) and inputs.shape[0] == n
    torch.testing.assert_close(probs.sum(1), torch.ones(n))
    assert torch.equal(dec, probs.argmax(1))
    # per-item losses against a float64 recomputation from the probabilities
    ref = -torch.log(probs.double()[torch.arange(n), targs])
    torch.testing.assert_close(losses.double(), ref, rtol=1e-4, atol=1e-5)
    # predict on a raw item gives the same probabilities as get_preds
    label, idx, p = learn.predict(lesion_dls.valid.dataset[3][0])
    torch.testing.assert_close(p, probs[3], rtol=1e-5, atol=1e-6)
    assert idx == int(probs[3].argmax()) and label == lesion_dls.vocab[idx]
    # validate() agrees and leaves the history alone
    hist = list(learn.recorder.values)
    res = learn.validate()
    assert learn.recorder.values == hist
    assert res["valid_loss"] == pytest.approx(float(losses.mean()), rel=1e-5)
    assert res["accuracy"] == pytest.approx(float((dec == targs).float().mean()))
    learn.model.train()  # validate, get_preds and predict put back the mode they found
    learn.validate()
    learn.get_preds()
    learn.predict(lesion_dls.valid.dataset[3][0])
    assert learn.model.training
    learn.model.eval()
    learn.validate()
    assert not learn.model.training
    with pytest.raises(ValueError, match="one image tensor"):
        learn.predict(torch.zeros(2, 3, 8, 8))


def test_save_load_round_trip_and_bad_files(lesion_dls, tmp_path):
    learn = lesion_learner(lesion_dls, path=tmp_path)
    learn.fit(1, lr=3e-3)
    p1 = learn.get_preds()[0]
    path = learn.save("m1")
    assert path == tmp_path / "models" / "m1.pth"
    assert sorted(x.name for x in path.parent.iterdir()) == ["m1.pth"]  # no temp file left
    other = lesion_learner(lesion_dls, path=tmp_path)
    other.load("m1")
    torch.testing.assert_close(other.get_preds()[0], p1)
    assert other.opt is not None and len(other.opt.state) > 0  # optimizer state came back
    # truncated file: a clear error naming it
    data = path.read_bytes()
    (tmp_path / "models" / "bad.pth").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="bad.pth"):
        other.load("bad")
    with pytest.raises(FileNotFoundError, match="nope"):
        other.load("nope")
    # a model with another number of outputs: clear error
    wrong = dl.Learner(lesion_dls, dl.create_model("simple_cnn", 3), progress=False, path=tmp_path, device="cpu")
    with pytest.raises(ValueError, match="does not fit"):
        wrong.load("m1")
    # a pickle with code in it is refused (weights_only)
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "models" / "evil.pth").write_bytes(pickle.dumps({"model": Evil()}))
    with pytest.raises(ValueError, match="evil.pth"):
        other.load("evil")


def test_no_host_sync_inside_training_batches():
    """dermlearn's code reads no tensor back to the host between before_batch and
    after_batch (torch.optim's own CPU step counters are host tensors by design); a read
    slipped into the loop is counted, once per batch."""
    assert count_host_reads(tiny_fit()) == 0
    assert count_host_reads(tiny_fit((injected_read()(),))) == 10


def test_host_reads_are_recognised_by_the_package_directory(tmp_path):
    """torch imported from a folder whose path contains "dermlearn" (a virtual environment
    named after the project) is not dermlearn's code: a substring test counted torch.optim's
    reads there (60)."""
    site = tmp_path / "dermlearn-env" / "site-packages"
    site.mkdir(parents=True)
    (site / "torch").symlink_to(Path(torch.__file__).resolve().parent, target_is_directory=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    r = subprocess.run([sys.executable, "-m", "tests.host_reads"], capture_output=True, text=True, cwd=REPO, env=env)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if line.startswith(("torch from", "host reads"))]
    assert lines[0] == f"torch from {site / 'torch' / '__init__.py'}"
    assert lines[1:] == ["host reads 0", "host reads with one injected 10"]
    assert not is_dermlearn_file(str(site / "torch" / "optim" / "adam.py"))
    assert is_dermlearn_file(dl.Learner.fit.__code__.co_filename)


def test_dataloaders_and_bad_inputs():
    learn = tiny_learner()
    assert isinstance(learn.dls, dl.DataLoaders) and learn.device == torch.device("cpu")
    assert dl.default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    empty = DataLoader(torch.utils.data.TensorDataset(torch.zeros(0, 8), torch.zeros(0).long()), batch_size=4)
    bad = dl.Learner((empty, None), learn.model, progress=False, device="cpu")
    with pytest.raises(ValueError, match="empty"):
        bad.fit(1)
    with pytest.raises(ValueError, match="start_epoch"):
        learn.fit(2, start_epoch=3)
    with pytest.raises(ValueError, match="no validation loader"):
        bad.validate()


def test_progress_prints_a_table(capsys):
    learn = tiny_learner(metrics=[dl.accuracy], progress=True)
    learn.fit(2, lr=1e-2)
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["epoch", "train_loss", "valid_loss", "accuracy"]
    assert len(out) == 3 and out[2].split()[0] == "1"
    with learn.no_bar():
        learn.fit(1)
    assert capsys.readouterr().out == ""


def test_recorder_plots(lesion_dls):
    learn = lesion_learner(lesion_dls)
    learn.fit_one_cycle(2, 3e-3)
    fig = learn.recorder.plot_loss()
    assert len(fig.axes[0].lines) == 3
    fig = learn.recorder.plot_lr()
    assert [line.get_label() for line in fig.axes[0].lines] == ["groups 0, 1, 2"]  # one rate: one line for the groups
    learn.fit_one_cycle(1, slice(1e-4, 1e-2))
    assert len(learn.recorder.plot_lr().axes[0].lines) == 3  # discriminative rates: one line per layer group
    assert learn.recorder.history("accuracy") == [r["accuracy"] for r in learn.recorder.values]
    with pytest.raises(KeyError, match="available"):
        learn.recorder.history("nope")


def test_bce_one_hot_learner_reports_class_probabilities(lesion_dls):
    """A single-label model trained with the study's BCE loss reports its sigmoid scores
    normalised to sum 1 (they summed to about 2 and were read as probabilities); the raw
    sigmoids on request; the decoded class is the sigmoid argmax either way."""
    learn = lesion_learner(lesion_dls, loss_func=dl.BCEWithLogitsOneHot())
    learn.fit(1, lr=3e-3)
    probs, targs, dec = learn.get_preds(with_decoded=True)
    raw, _ = learn.get_preds(act=torch.sigmoid)
    assert (probs >= 0).all() and (probs <= 1).all()
    torch.testing.assert_close(probs.sum(1), torch.ones(len(probs)))
    assert not torch.allclose(raw.sum(1), torch.ones(len(raw)))  # the raw scores do not sum to 1
    torch.testing.assert_close(probs, raw / raw.sum(1, keepdim=True))
    assert not torch.allclose(probs, raw.double().logit().softmax(1).float(), atol=1e-3)  # not the softmax either
    assert torch.equal(dec, probs.argmax(1)) and torch.equal(dec, raw.argmax(1))
    label, idx, p = learn.predict(lesion_dls.valid.dataset[0][0])
    torch.testing.assert_close(p, probs[0]) and float(p.sum()) == pytest.approx(1.0)
    multi = lesion_learner(lesion_dls, loss_func=dl.BCEWithLogitsOneHot(multi_label=True))
    multi.model.load_state_dict(learn.model.state_dict())
    torch.testing.assert_close(multi.get_preds()[0], raw)
    assert F.one_hot(targs, 4).shape == probs.shape


def test_same_seed_same_run(lesion_dls):
    import random

    import numpy as np

    def run():
        dl.set_seed(7, deterministic=True)
        a = (random.random(), float(np.random.rand()), float(torch.rand(())))
        dls = dl.synthetic_dataloaders(n=96, size=32, n_classes=3, bs=16, seed=1)
        learn = dl.Learner(dls, dl.create_model("simple_cnn", 3), metrics=[dl.accuracy], progress=False, device="cpu")
        learn.fit_one_cycle(2, 3e-3)
        return a, learn.recorder.values, learn.recorder.losses

    (a1, v1, l1), (a2, v2, l2) = run(), run()
    assert a1 == a2 and l1 == l2
    assert [{k: v for k, v in r.items() if k != "time"} for r in v1] == [{k: v for k, v in r.items() if k != "time"} for r in v2]
    torch.use_deterministic_algorithms(False)


def test_non_finite_loss_stops_and_keeps_good_weights():
    calls = {"n": 0}

    def loss(pred, y):
        calls["n"] += 1
        out = F.cross_entropy(pred, y)
        return out * float("inf") if calls["n"] == 29 else out  # 10 train + 2 valid calls per epoch: epoch 2, batch 4

    starts = {}

    class Snap(dl.Callback):
        order = -1

        def before_train(self):
            starts[self.learn.epoch] = {k: v.clone() for k, v in self.learn.model.state_dict().items()}

    learn = tiny_learner(loss_func=loss, cbs=[Snap()])
    with pytest.warns(RuntimeWarning, match="epoch 2, batch 4"):
        learn.fit(5, lr=1e-2)
    reason = learn.non_finite_guard.stop_reason
    assert "epoch 2, batch 4 (lr 0.01)" in reason
    assert len(learn.recorder.values) == 2 and max(starts) == 2  # the failed epoch 2 gets no row; 3 and 4 never start
    assert not math.isfinite(learn.recorder.losses[24])
    for k, v in learn.model.state_dict().items():
        assert torch.isfinite(v).all() and torch.equal(v, starts[2][k])


def test_fit_arguments_that_are_not_whole_epochs_are_named():
    """fit(-3) blamed start_epoch; fit_sgdr(1.5, 1) was accepted though its message asks for
    integers."""
    import numpy as np

    learn = tiny_learner()
    for bad, call in ((-3, lambda: learn.fit(-3)), (0, lambda: learn.fit(0)), (2.5, lambda: learn.fit(2.5)),
                      (0.5, lambda: learn.fit_one_cycle(0.5)), (1.5, lambda: learn.fit_flat_cos(1.5))):  # fmt: skip
        with pytest.raises(ValueError, match=rf"n_epoch must be a whole number of epochs >= 1, got {bad}"):
            call()
    for args, shown in (((1.5, 1), "n_cycles=1.5"), ((2, 0.5), "cycle_len=0.5"), ((True, 1), "n_cycles=True")):
        with pytest.raises(ValueError, match=rf"\(integers\), got .*{shown}"):
            learn.fit_sgdr(*args)
    learn.fit_sgdr(np.int64(1), 1, lr_max=1e-2)  # numpy integers are integers
    assert len(learn.recorder.values) == 1


def test_progress_table_without_bars(capsys):
    """progress='table' prints the epoch table and no bar (the CLI's --no-bar); lr_find shows
    one bar of its iterations where the learner shows bars, and none in table mode."""
    learn = tiny_learner(metrics=[dl.accuracy], progress="table")
    learn.fit(2, lr=1e-2)
    cap = capsys.readouterr()
    assert len(cap.out.splitlines()) == 3 and "it/s" not in cap.err and "%|" not in cap.err
    learn.lr_find(num_it=12, show_plot=False)
    assert "lr_find" not in capsys.readouterr().err
    learn = tiny_learner(progress=True)
    learn.lr_find(num_it=12, show_plot=False)
    cap = capsys.readouterr()
    assert "lr_find" in cap.err and cap.out == ""  # a bar, no epoch table
    with pytest.raises(ValueError, match="progress must be True, False or 'table'"):
        tiny_learner(progress="bars")
