"""LR range test: fastai's suggestions on its own recorded curve; no side effects."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import dermlearn as dl
from tests.helpers import tiny_learner


def test_suggestions_match_fastai_on_its_curve(traces):
    t = traces["lr_find"]
    lrs, losses = np.array(t["lrs"]), np.array(t["losses_smoothed"])
    np.testing.assert_allclose(lrs, [1e-7 * 1e8 ** (i / 50) for i in range(50)], rtol=1e-12)
    for f in (dl.valley, dl.slide, dl.minimum, dl.steep):
        assert f(lrs, losses, 50) == pytest.approx(t["suggestions"][f.__name__], rel=1e-6), f.__name__


def test_lr_find_schedule_and_named_suggestions():
    learn = tiny_learner()
    res = learn.lr_find(num_it=50, stop_div=False, suggest_funcs=(dl.minimum, dl.steep, dl.valley, dl.slide))
    assert len(res.lrs) == 50 and not res.stopped_early
    np.testing.assert_allclose(res.lrs, [1e-7 * 1e8 ** (i / 50) for i in range(50)], rtol=1e-12)
    assert set(res.suggestions) == {"minimum", "steep", "valley", "slide"}
    assert res.valley == res.suggestions["valley"]
    assert all(1e-7 <= v <= 10 for v in res.suggestions.values())
    fig = res.plot()
    assert fig.axes[0].get_xscale() == "log"


def _snapshot(learn):
    return (
        {k: v.clone() for k, v in learn.model.state_dict().items()},
        torch.get_rng_state(), np.random.get_state(), random.getstate(),
    )


def test_lr_find_leaves_everything_as_it_was(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.chdir(tmp_path)
    a, b = tiny_learner(), tiny_learner()
    for learn in (a, b):
        learn.fit(1, lr=1e-2)  # the optimizer now has state
    opt_before = {k: {n: t.clone() for n, t in s.items() if torch.is_tensor(t)} for k, s in a.opt.state_dict()["state"].items()}
    model_before, trng, nrng, prng = _snapshot(a)
    hist_before = list(a.recorder.losses)
    a.lr_find(num_it=30)
    model_after, trng2, nrng2, prng2 = _snapshot(a)
    for k in model_before:
        assert torch.equal(model_before[k], model_after[k]), k
    for k, s in a.opt.state_dict()["state"].items():
        for n, t in s.items():
            if torch.is_tensor(t):
                assert torch.equal(t, opt_before[k][n])
    assert torch.equal(trng, trng2) and prng == prng2
    assert all(np.array_equal(x, y) for x, y in zip(nrng, nrng2))
    assert a.recorder.losses == hist_before
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["tmp"]  # no file left anywhere
    # and the run continues bit for bit as if lr_find had never happened
    a.fit(1, lr=1e-2)
    b.fit(1, lr=1e-2)
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k


def test_lr_find_stops_on_divergence_without_nan_in_weights():
    learn = tiny_learner(opt_func=dl.sgd(momentum=0.9))
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    res = learn.lr_find(start_lr=1e-3, end_lr=1e7, num_it=100)
    assert res.stopped_early and len(res.lrs) < 100
    for k, v in learn.model.state_dict().items():
        assert torch.isfinite(v).all() and torch.equal(v, before[k])


def test_lr_find_nan_loss_stops_before_any_step():
    calls = {"n": 0}
    steps = {"n": 0}

    def loss(pred, y):
        calls["n"] += 1
        out = torch.nn.functional.cross_entropy(pred, y)
        return out * float("nan") if calls["n"] > 5 else out

    class CountSteps(dl.Callback):
        def after_step(self):
            steps["n"] += 1

    learn = tiny_learner(loss_func=loss, cbs=[CountSteps()])
    res = learn.lr_find(num_it=50)
    assert res.stopped_early and len(res.lrs) == 5 and steps["n"] == 5


def test_lr_find_bad_args():
    learn = tiny_learner()
    with pytest.raises(ValueError, match="start_lr < end_lr"):
        learn.lr_find(start_lr=1.0, end_lr=1e-3)


def test_study_recipe_trains_at_the_suggestion_it_is_asked_for():
    from dermlearn.training.recipe import study_recipe

    logs = []
    res = study_recipe(tiny_learner(), pretrained=False, cycles=1, lr_find_iters=40, suggestion="max", log=logs.append)
    sugg = res.lr_find.suggestions
    assert sugg["minimum"] > sugg["valley"] and res.lr == sugg["minimum"] and f"-> lr {res.lr:.2e}" in logs[0]
    default = study_recipe(tiny_learner(), pretrained=False, cycles=1, lr_find_iters=40, log=logs.append)
    assert default.lr == default.lr_find.suggestions["valley"]  # from scratch too
    with pytest.raises(ValueError, match="suggestion"):
        study_recipe(tiny_learner(), pretrained=False, suggestion="steep")


def test_lr_find_leaves_a_shuffled_augmented_loader_as_it_found_it(tmp_path, monkeypatch):
    """After lr_find, the next fit sees the same batches (order and augmentation) as a fit
    without it: the sweep's epochs advanced the loader's epoch counter and the augmentation
    generator, and both are put back."""
    from tests.helpers import synthetic_folder

    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    synthetic_folder(tmp_path / "imgs", n=64, size=32)

    class FirstBatch(dl.Callback):
        def before_batch(self):
            if self.learn.training and not hasattr(self, "x"):
                self.x = self.learn.xb.clone()

    def first_batch(sweep: bool) -> torch.Tensor:
        data = dl.DermData.from_folder(tmp_path / "imgs", seed=0)
        dls = data.dls(bs=16, size=32, seed=3, progress=False)  # shuffled, BatchAugment
        torch.manual_seed(0)
        learn = dl.Learner(dls, dl.create_model("simple_cnn", data.c), progress=False, device="cpu")
        if sweep:
            learn.lr_find(num_it=7, show_plot=False)  # 3 batches an epoch: 3 epochs of the loader
        cb = FirstBatch()
        learn.fit(1, 1e-3, cbs=[cb])
        return cb.x

    torch.testing.assert_close(first_batch(True), first_batch(False), rtol=0, atol=0)
