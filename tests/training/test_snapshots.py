"""Snapshot ensembles: which epochs are kept, that the copies are the weights of those
epochs, the mean of their predictions, and the learner's weights left as they were."""

from __future__ import annotations

import pytest
import torch

import dermlearn as dl
from dermlearn.callback import Callback
from tests.helpers import tiny_learner


class _EveryEpoch(Callback):
    """Records a copy of the weights after each epoch (an independent witness)."""

    order = 56

    def __init__(self) -> None:
        super().__init__()
        self.states: list[dict[str, torch.Tensor]] = []

    def after_epoch(self) -> None:
        self.states.append({k: v.detach().clone() for k, v in self.learn.model.state_dict().items()})


def test_cycle_ends_of_sgdr():
    assert dl.SnapshotEnsemble.cycle_ends(3, 1) == [0, 2, 6]
    assert dl.SnapshotEnsemble.cycle_ends(3, 8) == [7, 23, 55]  # 8, 16, 32 epochs
    assert dl.SnapshotEnsemble.cycle_ends(3, 2, cycle_mult=1) == [1, 3, 5]
    # the last end is the schedule's last epoch: as many epochs as fit_sgdr trains
    learn = tiny_learner()
    learn.fit_sgdr(3, 1, lr_max=1e-2)
    assert len(learn.recorder.values) == dl.SnapshotEnsemble.cycle_ends(3, 1)[-1] + 1
    with pytest.raises(ValueError, match="n_cycles, cycle_len and cycle_mult"):
        dl.SnapshotEnsemble.cycle_ends(0, 1)
    with pytest.raises(ValueError, match="epochs must be"):
        dl.SnapshotEnsemble([])
    with pytest.raises(ValueError, match="epochs must be"):
        dl.SnapshotEnsemble([-1, 2])
    late = dl.SnapshotEnsemble()  # epochs set once the schedule is planned
    with pytest.raises(ValueError, match="set epochs"):
        tiny_learner().fit(1, lr=1e-2, cbs=[late])
    late.epochs = [1, 0, 1]
    tiny_learner().fit(2, lr=1e-2, cbs=[late])
    assert late.epochs == [0, 1] and [e for e, _ in late.snapshots] == [0, 1]


def test_snapshots_are_copies_of_the_cycle_end_weights_and_their_mean_is_the_ensemble():
    ens, witness = dl.SnapshotEnsemble(dl.SnapshotEnsemble.cycle_ends(3, 1)), _EveryEpoch()
    learn = tiny_learner()
    learn.fit_sgdr(3, 1, lr_max=1e-2, cbs=[ens, witness])
    assert [e for e, _ in ens.snapshots] == [0, 2, 6]
    for epoch, state in ens.snapshots:
        for k, v in state.items():
            assert v.device.type == "cpu" and torch.equal(v, witness.states[epoch][k])
    # not views: training on changes the live weights, not the snapshots
    final = {k: v.clone() for k, v in learn.model.state_dict().items()}
    learn.fit(1, lr=1e-1)
    assert all(torch.equal(v, witness.states[6][k]) for k, v in ens.snapshots[-1][1].items())
    moved = {k: v.clone() for k, v in learn.model.state_dict().items()}
    assert not all(torch.equal(moved[k], final[k]) for k in final)
    # a fit that uses the callback again starts a new set: epoch 0 of that fit is kept
    learn.fit(1, lr=1e-1, cbs=[ens])
    assert [e for e, _ in ens.snapshots] == [0]

    # the ensemble of the last two snapshots: the float64 mean of each one's probabilities
    ens2, witness2 = dl.SnapshotEnsemble([0, 2, 6]), _EveryEpoch()
    learn2 = tiny_learner()
    learn2.fit_sgdr(3, 1, lr_max=1e-2, cbs=[ens2, witness2])
    own = {k: v.clone() for k, v in learn2.model.state_dict().items()}
    probs, targets = ens2.get_preds(learn2, last=2)
    expected = []
    for epoch in (2, 6):
        reference = tiny_learner()
        reference.model.load_state_dict(witness2.states[epoch])
        expected.append(reference.get_preds()[0].double())
    assert probs.shape == (64, 2) and torch.allclose(probs.double(), (expected[0] + expected[1]) / 2, atol=1e-6)
    assert torch.equal(targets, reference.get_preds()[1])
    assert torch.allclose(probs.sum(1), torch.ones(64), atol=1e-5)
    # the learner's own weights are back
    assert all(torch.equal(v, own[k]) for k, v in learn2.model.state_dict().items())
    # one snapshot alone is that model's prediction; all by default
    assert torch.allclose(ens2.get_preds(learn2, last=1)[0].double(), expected[1], atol=1e-6)
    assert not torch.allclose(ens2.get_preds(learn2)[0], probs)
    each = ens2.get_preds(learn2, last=2, per_snapshot=True)[0]
    assert each.shape == (2, 64, 2) and torch.allclose(each.double(), torch.stack(expected), atol=1e-6)


def test_snapshot_tta_and_bad_arguments(folder_data):
    torch.manual_seed(0)
    learn = dl.Learner(folder_data.dls(bs=16, size=32, progress=False), dl.create_model("simple_cnn", 3), device="cpu",
                       progress=False)  # fmt: skip
    ens = dl.SnapshotEnsemble([0, 1])
    with pytest.raises(ValueError, match="no snapshot was taken"):
        ens.get_preds(learn)
    learn.fit_sgdr(2, 1, lr_max=3e-3, cycle_mult=1, cbs=[ens])
    plain = ens.get_preds(learn)[0]
    augmented = ens.get_preds(learn, n_tta=2)[0]
    assert augmented.shape == plain.shape and not torch.allclose(augmented, plain)
    assert torch.allclose(augmented.sum(1), torch.ones(len(augmented)), atol=1e-5)
    with pytest.raises(ValueError, match=r"last must be in 1..2"):
        ens.get_preds(learn, last=3)
    with pytest.raises(ValueError, match="n_tta must be >= 0"):
        ens.get_preds(learn, n_tta=-1)
    # a failed prediction leaves the learner's weights as they were
    own = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with pytest.raises(ValueError, match="no validation loader"):
        _predict_without_valid(ens, learn)
    assert all(torch.equal(v, own[k]) for k, v in learn.model.state_dict().items())


def _predict_without_valid(ens: dl.SnapshotEnsemble, learn: dl.Learner):
    valid = learn.dls.valid
    learn.dls.valid = None
    try:
        return ens.get_preds(learn)
    finally:
        learn.dls.valid = valid
