"""Event order, cancel semantics (fastai's), callback ordering and management."""

from __future__ import annotations

import pytest
import torch

import dermlearn as dl


class Log(dl.Callback):
    """Records every event it sees; raises ``exc`` at ``(event, iter)`` if given."""

    def __init__(self, raise_at=None, exc=None):
        super().__init__()
        self.events: list[str] = []
        self.raise_at, self.exc = raise_at, exc


def _make(ev):
    def f(self):
        self.events.append(ev)
        if self.raise_at is not None and self.raise_at[0] == ev and self.learn.iter == self.raise_at[1]:
            epoch_ok = self.raise_at[2] is None or self.learn.epoch == self.raise_at[2]
            phase = self.raise_at[3] if len(self.raise_at) > 3 else "train"
            phase_ok = phase is None or (phase == "train") == self.learn.training
            if epoch_ok and phase_ok:
                raise self.exc()

    return f


for _ev in dl.EVENTS:
    setattr(Log, _ev, _make(_ev))


def small(**kw):
    from torch.utils.data import DataLoader

    from tests.helpers import ThreeGroupMLP, blobs

    train = DataLoader(blobs(32), batch_size=16)
    valid = DataLoader(blobs(16, 1), batch_size=16)
    return dl.Learner((train, valid), ThreeGroupMLP(), progress=False, device="cpu", **kw)


BATCH_TRAIN = ["before_batch", "after_pred", "after_loss", "before_backward", "after_backward", "before_step", "after_step", "after_batch"]
BATCH_VALID = ["before_batch", "after_pred", "after_loss", "after_batch"]


def test_event_order_of_a_full_fit():
    log = Log()
    small(cbs=[log]).fit(1)
    want = (["before_fit", "before_epoch", "before_train"] + BATCH_TRAIN * 2 + ["after_train", "before_validate"]
            + BATCH_VALID + ["after_validate", "after_epoch", "after_fit"])  # fmt: skip
    assert log.events == want


@pytest.mark.parametrize(
    "exc,raise_at,check",
    [
        (dl.CancelBatchException, ("after_loss", 0, None), lambda e: e.count("after_cancel_batch") == 2 and e.count("before_backward") == 2 and e.count("after_batch") == 6),
        (dl.CancelTrainException, ("before_batch", 1, 0), lambda e: e.count("after_cancel_train") == 1 and e.count("after_train") == 2 and e.count("before_validate") == 2 and e.count("before_step") == 3),
        (dl.CancelValidException, ("before_batch", 0, None, "valid"), lambda e: e.count("after_cancel_validate") == 2 and e.count("after_pred") == 4 and "after_validate" in e and "after_epoch" in e),
        (dl.CancelEpochException, ("before_batch", 0, 0), lambda e: e.count("after_cancel_epoch") == 1 and e.count("after_epoch") == 2 and e.count("before_validate") == 1),
        (dl.CancelFitException, ("after_batch", 0, 0), lambda e: e[-2:] == ["after_cancel_fit", "after_fit"] and e.count("before_epoch") == 1),
        (dl.CancelBackwardException, ("before_backward", 0, None), lambda e: "after_cancel_backward" in e and e.count("before_step") == 4),
        (dl.CancelStepException, ("before_step", 0, None), lambda e: "after_cancel_step" in e and e.count("after_step") == 4),
    ],
)
def test_cancel_semantics(exc, raise_at, check):
    log = Log(raise_at, exc)
    small(cbs=[log]).fit(2)
    assert check(log.events), log.events


def test_cancelled_step_leaves_weights_and_cancelled_backward_leaves_no_grad():
    learn = small()
    before = [p.clone() for p in learn.model.parameters()]

    class NoStep(dl.Callback):
        def before_step(self):
            raise dl.CancelStepException()

    learn.fit(1, cbs=[NoStep()])
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))

    grads = []

    class NoBackward(dl.Callback):
        def before_backward(self):
            raise dl.CancelBackwardException()

        def before_step(self):
            grads.append([p.grad for p in self.learn.model.parameters()])

    learn.fit(1, cbs=[NoBackward()])
    assert all(g is None for gs in grads for g in gs)


def test_callbacks_run_in_order_and_are_managed():
    seen = []

    class A(dl.Callback):
        order = 5

        def before_fit(self):
            seen.append("A")

    class B(dl.Callback):
        order = -5

        def before_fit(self):
            seen.append("B")

    learn = small(cbs=[A()])
    b = B()
    learn.add_cb(b)
    assert learn.b is b and learn.a.learn is learn
    learn.fit(1)
    assert seen == ["B", "A"]
    learn.remove_cb(B)
    assert not hasattr(learn, "b") and b.learn is None
    out = learn.show_training_loop()
    assert "A" in out and "Recorder" in out and "before_fit" in out


def test_fit_cbs_are_removed_even_on_error():
    class Boom(dl.Callback):
        def before_batch(self):
            raise RuntimeError("boom")

    learn = small()
    n = len(learn.cbs)
    with pytest.raises(RuntimeError, match="boom"):
        learn.fit(1, cbs=[Boom()])
    assert len(learn.cbs) == n and not hasattr(learn, "boom")


def test_run_train_and_run_valid_filter_inner_events():
    class TrainOnly(dl.Callback):
        run_valid = False

        def __init__(self):
            super().__init__()
            self.n = 0

        def after_batch(self):
            self.n += 1

    cb = TrainOnly()
    small(cbs=[cb]).fit(1)
    assert cb.n == 2  # 2 training batches, the validation batch is skipped


def test_callback_name():
    assert dl.EarlyStopping().name == "early_stopping"
    assert dl.SaveModelCallback().name == "save_model"
    assert dl.Recorder().name == "recorder"
