"""Callbacks that watch a per-epoch value: :class:`EarlyStopping` and :class:`SaveModelCallback`.

Both share :class:`TrackerCallback`: ``monitor`` names a value the Recorder logs
(``train_loss``, ``valid_loss`` or a metric's name); ``mode`` says whether lower (``'min'``)
or higher (``'max'``) is better (``'auto'``: ``'min'`` for names containing ``loss`` or
``error``, else ``'max'``); an epoch improves when it beats the best by more than
``min_delta``. A monitor name that is not logged is an error listing the available names.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

from dermlearn.callback import Callback, CancelFitException
from dermlearn.distributed import barrier

__all__ = ["EarlyStopping", "SaveModelCallback", "TrackerCallback"]


class TrackerCallback(Callback):
    """Base class: tracks the best value of ``monitor`` over epochs.

    Args:
        monitor: Name of the value to watch.
        mode: ``'min'``, ``'max'`` or ``'auto'``.
        min_delta: Minimum change that counts as an improvement (>= 0).
        baseline: Initial best value (an epoch must beat it to count as an improvement).

    Attributes:
        best: Best value so far.
        best_epoch: Epoch of the best value (-1 before any).
        improved: Whether the last epoch improved.
    """

    order = 60

    def __init__(self, monitor: str = "valid_loss", mode: str = "auto", min_delta: float = 0.0, baseline: float | None = None) -> None:
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        if mode == "auto":
            mode = "min" if ("loss" in monitor or "error" in monitor) else "max"
        self.monitor, self.mode, self.min_delta, self.baseline = monitor, mode, abs(min_delta), baseline
        self.best = baseline if baseline is not None else (math.inf if mode == "min" else -math.inf)
        self.best_epoch = -1
        self.improved = False

    def _is_better(self, value: float, best: float) -> bool:
        if self.mode == "min":
            return value < best - self.min_delta
        return value > best + self.min_delta

    def before_fit(self) -> None:
        names = self.learn.recorder.metric_names
        if self.monitor not in names:
            raise ValueError(f"{type(self).__name__} monitors {self.monitor!r}, which is not recorded; available: {names}")
        if self.learn.dls.valid is None and self.monitor != "train_loss":
            raise ValueError(f"{type(self).__name__} monitors {self.monitor!r} but there is no validation loader")
        self.best = self.baseline if self.baseline is not None else (math.inf if self.mode == "min" else -math.inf)
        self.best_epoch = -1
        self.improved = False

    def after_epoch(self) -> None:
        value = self.learn.recorder.values[-1].get(self.monitor, float("nan"))
        self.last_value = value
        self.improved = isinstance(value, float) and math.isfinite(value) and self._is_better(value, self.best)
        if self.improved:
            self.best, self.best_epoch = value, self.learn.epoch

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]


class EarlyStopping(TrackerCallback):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs.

    Args:
        monitor, mode, min_delta, baseline: See :class:`TrackerCallback`.
        patience: Epochs without improvement tolerated before stopping (>= 0).
        restore_best_weights: At the end of training, put back the weights of the best epoch
            (kept in memory).
        min_epochs: Never stop before this many epochs have run (the best value is tracked
            from the first). For one-cycle and SGDR schedules: the validation loss of their
            high-learning-rate epochs is no guide, and with ``min_epochs=0`` a fit whose
            first epoch happened to score best can stop before the rate comes down.

    Attributes:
        stopped_epoch: Epoch after which training stopped (None if it ran to the end).
        stop_reason: A sentence saying why training stopped (None if it did not).
    """

    def __init__(
        self,
        monitor: str = "valid_loss",
        mode: str = "auto",
        min_delta: float = 0.0,
        patience: int = 1,
        baseline: float | None = None,
        restore_best_weights: bool = False,
        min_epochs: int = 0,
    ) -> None:
        super().__init__(monitor, mode, min_delta, baseline)
        self.order = 61  # after other trackers, so a stop never skips their after_epoch
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
        if min_epochs < 0:
            raise ValueError(f"min_epochs must be >= 0, got {min_epochs}")
        self.patience, self.restore_best_weights, self.min_epochs = patience, restore_best_weights, min_epochs
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.stop_reason: str | None = None

    def before_fit(self) -> None:
        super().before_fit()
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.stop_reason: str | None = None
        self._best_state: dict[str, torch.Tensor] | None = None

    def after_epoch(self) -> None:
        super().after_epoch()
        if self.improved:
            self.wait = 0
            if self.restore_best_weights:
                self._best_state = copy.deepcopy(self.learn.model.state_dict())
            return
        self.wait += 1
        if self.wait > self.patience and self.learn.epoch + 1 >= self.min_epochs:
            self.stopped_epoch = self.learn.epoch
            self.stop_reason = (
                f"{self.monitor} did not improve by more than {self.min_delta} ({self.mode}) for {self.wait} epochs; "
                f"best {self.best:.6g} at epoch {self.best_epoch}, stopped after epoch {self.learn.epoch}"
            )
            raise CancelFitException()

    def after_fit(self) -> None:
        if self.restore_best_weights and self._best_state is not None:
            self.learn.model.load_state_dict(self._best_state)
        if self.stop_reason is not None:
            print(f"EarlyStopping: {self.stop_reason}")

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.wait = state["wait"]


class SaveModelCallback(TrackerCallback):
    """Save the model whenever ``monitor`` improves (atomically: temp file + fsync + rename),
    and optionally load the best one at the end.

    Args:
        monitor, mode, min_delta, baseline: See :class:`TrackerCallback`.
        fname: File name under ``learn.path / learn.model_dir`` (``.pth`` added).
        every_epoch: Save after every epoch as ``{fname}_{epoch}.pth`` instead.
        at_end: Load the best saved model when training ends.
        with_opt: Save the optimizer state too.
    """

    def __init__(
        self,
        monitor: str = "valid_loss",
        mode: str = "auto",
        min_delta: float = 0.0,
        fname: str = "model",
        every_epoch: bool = False,
        at_end: bool = True,
        with_opt: bool = False,
        baseline: float | None = None,
    ) -> None:
        super().__init__(monitor, mode, min_delta, baseline)
        self.fname, self.every_epoch, self.at_end, self.with_opt = fname, every_epoch, at_end, with_opt

    def after_epoch(self) -> None:
        super().after_epoch()
        if self.every_epoch:
            self.learn.save(f"{self.fname}_{self.learn.epoch}", with_opt=self.with_opt)
        elif self.improved:
            self.learn.save(self.fname, with_opt=self.with_opt)

    def after_fit(self) -> None:
        if self.at_end and not self.every_epoch and self.best_epoch >= 0:
            barrier()  # rank 0 wrote the file
            self.learn.load(self.fname, with_opt=False)
