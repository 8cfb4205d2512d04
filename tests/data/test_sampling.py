"""Class balancing: weighted sampling, oversampling, loss weights, dynamic balance."""


from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import dermlearn as dl
from dermlearn.data import (
    ClassWeightedSampler,
    oversample_indices,
    recall_weights,
)
from dermlearn.data.sampling import inverse_frequency_weights
from tests.helpers import synthetic_folder


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))


# ---------------------------------------------------------------------------- loader + augmentation


class ConstantClass(nn.Module):
    """Predicts class ``train_class`` in training mode and ``eval_class`` in eval mode."""

    def __init__(self, c, train_class=0, eval_class=0):
        super().__init__()
        self.c, self.train_class, self.eval_class = c, train_class, eval_class
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        out = torch.zeros(x.shape[0], self.c) + self.w
        out[:, self.train_class if self.training else self.eval_class] += 10
        return out


# ---------------------------------------------------------------------------- balancing
def test_weighted_sampler_frequencies_ranks_and_determinism():
    labels = np.repeat(np.arange(3), [700, 200, 100])
    target = np.array([0.2, 0.3, 0.5])
    s = ClassWeightedSampler(labels, target, num_samples=100_000, seed=1)
    freq = np.bincount(labels[s.indices()], minlength=3) / 100_000
    assert np.abs(freq - target).max() < 0.01
    assert np.array_equal(s.indices(), ClassWeightedSampler(labels, target, 100_000, seed=1).indices())
    s.set_epoch(1)
    assert not np.array_equal(s.indices(), ClassWeightedSampler(labels, target, 100_000, seed=1).indices())
    # two ranks: same weights, disjoint interleaved slices of one global draw
    r0 = ClassWeightedSampler(labels, target, 1000, seed=2, rank=0, world_size=2).indices()
    r1 = ClassWeightedSampler(labels, target, 1000, seed=2, rank=1, world_size=2).indices()
    full = ClassWeightedSampler(labels, target, 1000, seed=2).indices()
    assert np.array_equal(full[0::2], r0) and np.array_equal(full[1::2], r1) and len(r0) == len(r1) == 500
    with pytest.raises(ValueError, match="class weights"):
        s.set_class_weights([1.0, -1.0, 1.0])


def test_static_oversampling_and_loss_weights():
    labels = np.repeat(np.arange(3), [50, 10, 5])
    idx = oversample_indices(labels, seed=0)
    assert np.bincount(labels[idx]).tolist() == [50, 50, 50]
    assert set(range(65)) <= set(idx.tolist())
    w = inverse_frequency_weights(labels, 4)
    torch.testing.assert_close(w, torch.tensor([65 / (3 * 50), 65 / (3 * 10), 65 / (3 * 5), 0.0]))


def test_milder_loss_weights_keep_the_loss_scale():
    labels = np.repeat(np.arange(3), [50, 10, 5])
    counts = np.array([50.0, 10.0, 5.0])

    def expected(e):  # w ∝ e ** -p for the present classes, mean 1 over the items
        w = 1.0 / e
        return w * 65 / (counts * w).sum()

    sqrt = inverse_frequency_weights(labels, 4, power=0.5)
    torch.testing.assert_close(sqrt[:3].double(), torch.from_numpy(expected(np.sqrt(counts))), rtol=1e-6, atol=0)
    assert sqrt[3] == 0 and float(sqrt[:3].double() @ torch.tensor(counts)) == pytest.approx(65)
    assert sqrt[2] / sqrt[0] == pytest.approx(np.sqrt(10))  # 50 / 5 = 10 times rarer, sqrt(10) times the weight
    torch.testing.assert_close(inverse_frequency_weights(labels, 3, power=0.0), torch.ones(3))
    eff = inverse_frequency_weights(labels, 3, beta=0.9)  # effective numbers (1 - 0.9^n) / 0.1
    torch.testing.assert_close(eff.double(), torch.from_numpy(expected((1 - 0.9**counts) / 0.1)), rtol=1e-6, atol=0)
    # beta -> 0: every class counts as one item (no weighting); beta -> 1: plain inverse frequency
    torch.testing.assert_close(inverse_frequency_weights(labels, 3, beta=0.0), torch.ones(3))
    torch.testing.assert_close(inverse_frequency_weights(labels, 3, beta=1 - 1e-9), inverse_frequency_weights(labels, 3), rtol=1e-5, atol=0)
    for kw, msg in [({"power": -1}, "power"), ({"power": float("nan")}, "power"), ({"beta": 1.0}, "beta")]:
        with pytest.raises(ValueError, match=msg):
            inverse_frequency_weights(labels, 3, **kw)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        inverse_frequency_weights(labels, 2)
    with pytest.raises(ValueError, match="no labels"):
        inverse_frequency_weights([], 2)


def test_recall_weights():
    w = recall_weights([0.9, 0.5, 0.7])
    assert w[1] > w[2] > w[0] > 0 and w.sum() == pytest.approx(1)
    assert np.allclose(recall_weights([0.6, 0.6, 0.6]), 1 / 3)
    assert recall_weights([1.0, 1.0, 0.0])[0] > 0  # never 0
    w2 = recall_weights([0.4, 0.5, 0.7])  # class 0's recall dropped
    assert w2[0] > w[0]
    with pytest.raises(ValueError, match="floor"):
        recall_weights([0.5], floor=0)


def test_dynamic_balance_moves_weight_to_weak_classes(folder_data):
    dls = folder_data.dls(bs=16, size=32, balance="dynamic", progress=False)
    assert any(isinstance(c, dl.DynamicBalance) for c in dls.cbs)
    learn = dl.Learner(dls, ConstantClass(3), progress=False, device="cpu")
    learn.fit(2, lr=0.0)
    hist = learn.dynamic_balance.history
    assert np.allclose(hist[0], 1 / 3)  # uniform at the start
    w = dls.train.sampler.class_weights
    assert w[1] == pytest.approx(w[2]) and w[1] > w[0] > 0  # class 0 has recall 1, the others 0
    assert w[0] == pytest.approx(0.1 / 2.3) and np.allclose(hist[1], w)


def test_dynamic_balance_reads_recall_from_the_chosen_source(folder_data):
    weights = {}
    for source in ("train", "valid"):
        dls = folder_data.dls(bs=16, size=32, balance="dynamic", progress=False)
        dls.cbs = [dl.DynamicBalance(source=source)]
        learn = dl.Learner(dls, ConstantClass(3, train_class=0, eval_class=1), progress=False, device="cpu")
        learn.fit(1, lr=0.0)
        weights[source] = dls.train.sampler.class_weights
    # in training the model is right on class 0 only, on the validation set on class 1 only
    assert np.allclose(weights["train"], np.array([0.1, 1.1, 1.1]) / 2.3)
    assert np.allclose(weights["valid"], np.array([1.1, 0.1, 1.1]) / 2.3)
    with pytest.raises(ValueError, match="source"):
        dl.DynamicBalance(source="test")


def test_dynamic_balance_momentum_damps_the_weights(folder_data):
    dls = folder_data.dls(bs=16, size=32, balance="dynamic", progress=False)
    dls.cbs = [dl.DynamicBalance(momentum=0.5)]
    learn = dl.Learner(dls, ConstantClass(3), progress=False, device="cpu")
    learn.fit(3, lr=0.0)
    new = np.array([0.1, 1.1, 1.1]) / 2.3  # recall 1 for class 0, 0 for the others, every epoch
    hist = np.array(learn.dynamic_balance.history)
    assert np.allclose(hist[1], 0.5 / 3 + 0.5 * new) and np.allclose(hist[2], 0.5 * hist[1] + 0.5 * new)
    assert np.isclose(sum(hist[2]), 1.0)
    for kw in ({"momentum": 1.0}, {"momentum": -0.1}, {"floor": 0.0}):
        with pytest.raises(ValueError, match=next(iter(kw))):
            dl.DynamicBalance(**kw)


def test_resample_draws_class_balanced_epochs_of_the_training_size(tmp_path):
    synthetic_folder(tmp_path, n=90, size=24)
    rare = sorted(p for p in tmp_path.iterdir() if p.is_dir())[0]
    for f in sorted(rare.iterdir())[6:]:  # 6 images left in the first class, about 30 in the others
        f.unlink()
    data = dl.DermData.from_folder(tmp_path)
    n_train = len(data.indices("train"))
    dls = data.dls(bs=8, size=16, balance="resample", progress=False, cache_dir=False)
    assert dls.cbs == [] and len(dls.train) == n_train // 8  # no callback; epochs as long as unbalanced ones
    epochs = [torch.cat([y for _, y in dls.train]) for _ in range(25)]
    assert not torch.equal(epochs[0], epochs[1])  # a fresh draw every epoch
    share = torch.bincount(torch.cat(epochs), minlength=3).double() / sum(len(e) for e in epochs)
    plain = torch.bincount(torch.from_numpy(data.y[data.indices("train")]), minlength=3).double() / n_train
    assert plain[0] < 0.15 and torch.allclose(share, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.06)
    again = data.dls(bs=8, size=16, balance="resample", progress=False, cache_dir=False)
    assert torch.equal(torch.cat([y for _, y in again.train]), epochs[0])  # seeded


def test_balance_arguments(folder_data):
    static = folder_data.dls(bs=8, size=32, balance="static", progress=False)
    drawn = torch.cat([y for _, y in static.train])
    counts = torch.bincount(drawn)
    assert counts.max() - counts.min() <= 8
    train_y = folder_data.y[folder_data.indices("train")]
    loss = folder_data.dls(bs=8, size=32, balance="loss", progress=False)
    torch.testing.assert_close(loss.class_weights, inverse_frequency_weights(train_y, 3))
    torch.testing.assert_close(folder_data.class_weights(power=0.5, beta=0.9), inverse_frequency_weights(train_y, 3, 0.5, 0.9))
    with pytest.raises(ValueError, match="balance"):
        folder_data.dls(balance="smote")


def test_two_learners_on_one_loader_each_get_their_own_data_callbacks(folder_data):
    """A model comparison (or a throwaway timing probe) builds a second Learner on the same
    loaders: the first must still train, with a DynamicBalance bound to itself (one shared
    instance was re-bound to the second Learner, and the first's fit read its empty state)."""
    dls = folder_data.dls(bs=16, size=32, balance="dynamic", progress=False)
    first = dl.Learner(dls, ConstantClass(3), progress=False, device="cpu")
    second = dl.Learner(dls, ConstantClass(3), progress=False, device="cpu")
    assert first.dynamic_balance is not second.dynamic_balance
    assert first.dynamic_balance.learn is first and second.dynamic_balance.learn is second
    assert dls.cbs[0].learn is None  # the loaders' own instance is never bound
    first.fit(2, lr=0.0)
    assert len(first.dynamic_balance.history) == 2 and second.dynamic_balance.history == []
    assert np.allclose(first.dynamic_balance.history[1], dls.train.sampler.class_weights)
