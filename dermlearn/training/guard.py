"""``NonFiniteGuard``: stop training on a NaN or infinite loss and keep good weights.

Checking every batch would cost a host-device sync per batch on a GPU. Instead the guard
snapshots the weights at the start of each epoch (one copy per epoch) and inspects the
epoch's losses when the Recorder reads them back at the end of the training phase. On a
non-finite loss it restores the weights from the start of that epoch, skips validation and
stops the fit with a message naming the epoch, the first bad batch and its learning rate.
"""

from __future__ import annotations

import math
import warnings

import torch

from dermlearn.callback import Callback, CancelFitException

__all__ = ["NonFiniteGuard"]


class NonFiniteGuard(Callback):
    """Stop on a non-finite training loss; the weights from the start of that epoch are kept.

    Attributes:
        stop_reason: Why the fit stopped (None when it did not).
    """

    order = 51  # after the Recorder has read the epoch's losses back
    run_valid = False

    def __init__(self) -> None:
        super().__init__()
        self.stop_reason: str | None = None

    def before_fit(self) -> None:
        self.stop_reason = None

    def before_train(self) -> None:
        self._snapshot = {k: v.detach().clone() for k, v in self.learn.model.state_dict().items()}
        self._first = len(self.learn.recorder.losses)

    def after_train(self) -> None:
        rec = self.learn.recorder
        losses = rec.losses[self._first :]
        bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
        if bad is None:
            return
        lr = rec.lrs[self._first + bad] if self._first + bad < len(rec.lrs) else float("nan")
        with torch.no_grad():
            self.learn.model.load_state_dict(self._snapshot)
        self.stop_reason = (
            f"non-finite training loss ({losses[bad]}) at epoch {self.learn.epoch}, batch {bad} (lr {lr:.3g}); "
            f"training stopped and the weights from the start of epoch {self.learn.epoch} restored"
        )
        warnings.warn(self.stop_reason, RuntimeWarning, stacklevel=2)
        raise CancelFitException()

    def after_fit(self) -> None:
        self._snapshot = None
