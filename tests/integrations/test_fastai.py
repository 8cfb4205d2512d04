"""The fastai bridge: dermlearn data, transforms and interpretation from a fastai Learner.

The loader adapter is tested without fastai; the rest needs the extra
(pip install -e ".[fastai]") and is skipped without it."""

from __future__ import annotations

import pytest
import torch

import dermlearn as dl
from dermlearn.integrations.fastai import FastaiLoader


@pytest.fixture
def dls():
    return dl.synthetic_dataloaders(n=160, size=32, n_classes=4, bs=16, seed=0)


def test_loader_adapter_gives_dermlearn_model_inputs(dls):
    valid = FastaiLoader(dls.valid, dls, training=False)
    assert len(valid) == len(dls.valid) and valid.n == len(dls.valid.dataset)
    x, y = valid.one_batch()
    raw_x, raw_y = next(iter(dls.valid))
    torch.testing.assert_close(x, dls.apply(raw_x, training=False))  # normalised floats, as dermlearn's model sees
    assert torch.equal(y, raw_y) and x.dtype == torch.float32
    assert sum(1 for _ in valid) == len(dls.valid)
    assert valid.new(shuffle=False, drop_last=False).training is False
    assert FastaiLoader(dls.train, dls, training=True).new(shuffle=False).training is False


def test_fastai_learner_trains_on_dermlearn_data(dls):
    pytest.importorskip("fastai", reason="the fastai extra is not installed: pip install -e '.[fastai]'")
    from fastai.callback.core import Callback as FastaiCallback
    from fastai.learner import Learner as FastaiLearner

    from dermlearn.integrations.fastai import (
        fastai_dataloaders,
        fastai_interpretation,
        transforms_callback,
    )
    from dermlearn.transforms import ShadesOfGray

    torch.manual_seed(0)
    fdls = fastai_dataloaders(dls, device="cpu")
    learn = FastaiLearner(fdls, dl.create_model("simple_cnn", 4), loss_func=dl.CrossEntropy())
    with learn.no_logging():
        learn.fit(4, 3e-3)
    losses = torch.tensor([float(v) for v in learn.recorder.losses])
    assert len(losses) == 4 * len(dls.train) and torch.isfinite(losses).all()
    assert losses[-8:].mean() < losses[:8].mean()  # it learns

    # the confusion analysis equals dermlearn's own on the same model and loader
    with learn.no_logging():
        interp = fastai_interpretation(learn)
    ours = dl.Learner(dls, learn.model, loss_func=dl.CrossEntropy(), device="cpu", progress=False)
    probs, targs = ours.get_preds()
    assert (interp.confusion_matrix() == dl.confusion_matrix(probs, targs, 4).numpy()).all()
    torch.testing.assert_close(interp.probs, probs, atol=1e-5, rtol=1e-5)
    assert interp.vocab == list(dls.vocab)

    # dermlearn transforms as a fastai callback: undo the normalisation, correct, redo it
    seen = []

    class Capture(FastaiCallback):
        order = 2

        def before_batch(self):
            seen.append(self.learn.xb[0].clone())

    mean, std = dl.IMAGENET_MEAN, dl.IMAGENET_STD
    with learn.no_logging():
        learn.get_preds(cbs=[transforms_callback([ShadesOfGray()], mean, std), Capture()])
    raw = next(iter(dls.valid))[0].float() / 255
    want = dl.Normalize()(ShadesOfGray()(raw))
    torch.testing.assert_close(seen[0], want, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="both mean and std"):
        transforms_callback([ShadesOfGray()], mean=mean)
