"""What every experiment-tracking callback logs, and when: :class:`RunLogger`.

A run logger records, for each ``fit``:

* the hyper-parameters (:func:`run_hparams`): architecture and stem, loss, optimizer, each
  layer group's learning rate at the start, weight decay, the schedule (the
  :class:`~dermlearn.training.schedule.ParamScheduler`'s schedules), epochs, batch size,
  the balancing and the pipeline steps of the data, and what the caller adds (``hparams=``:
  the seed, the data's name...);
* after every epoch, the epoch's training loss and learning rate of each batch (read from
  the :class:`~dermlearn.training.recorder.Recorder`, which reads the device once per epoch,
  so logging adds no per-batch synchronisation) and the epoch's losses and metrics;
* at the end of the fit, figures: the confusion matrix of the validation set and the
  Grad-CAM gallery of its leading confused pair (``figures=True``), and the LR range test's
  plot when ``learn.lr_find`` ran before it.

Subclasses write these where their tracker keeps them (:class:`~dermlearn.training.csv_logger.CSVLogger`,
:class:`~dermlearn.training.tensorboard_logger.TensorBoardCallback`). Under ``torchrun`` only rank 0
logs.
"""

from __future__ import annotations

import json
from typing import Any

from dermlearn.callback import Callback
from dermlearn.distributed import is_main_process
from dermlearn.interpret.interpretation import Interpretation
from dermlearn.losses import activation_name

from .schedule import ParamScheduler

__all__ = ["RunLogger", "run_hparams"]


def run_hparams(learn) -> dict[str, Any]:
    """The hyper-parameters of ``learn``'s current fit, as JSON-friendly values (call it in or
    after ``before_fit``)."""
    model = learn.model
    dls = learn.dls
    scheduler = next((cb for cb in learn.cbs if isinstance(cb, ParamScheduler)), None)
    train = dls.train
    hp: dict[str, Any] = {
        "arch": getattr(model, "arch", type(model).__name__),
        "stem": getattr(model, "stem", None),
        "loss": type(learn.loss_func).__name__,
        "activation": activation_name(learn.loss_func),
        "opt": getattr(learn.opt_func, "__name__", type(learn.opt_func).__name__),
        "n_epoch": int(learn.n_epoch),
        "batch_size": getattr(train, "batch_size", None),
        "layer_groups": learn.n_groups,
        "lr": [float(v) for v in learn.get_hyper("lr")] if learn.opt is not None else None,
        "wd": [float(v) for v in learn.get_hyper("wd")] if learn.opt is not None else None,
        "schedule": {k: repr(v) for k, v in scheduler.scheds.items()} if scheduler is not None else None,
        "balance": getattr(dls, "balance", None),
        "pipeline": [repr(t) for t in dls.batch_tfms],
        "train_pipeline": [repr(t) for t in dls.train_tfms],
        "temperature": float(learn.temperature),
    }
    return hp


class RunLogger(Callback):
    """Base of the tracking callbacks; see the module docstring.

    Args:
        hparams: More hyper-parameters to log with :func:`run_hparams` (e.g. ``{"seed": 0}``).
        figures: Log the confusion matrix and the leading confused pair's Grad-CAM gallery at
            the end of each fit (a prediction pass over the validation set).
        min_count: The leading pair is the most confused pair with at least this many errors
            in both directions together (no gallery when none has).
    """

    order = 60  # after the Recorder (50), which the epoch's values come from

    def __init__(self, hparams: dict[str, Any] | None = None, figures: bool = True, min_count: int = 1) -> None:
        super().__init__()
        self.extra_hparams = dict(hparams or {})
        self.figures, self.min_count = figures, min_count
        self.step = 0  # batches logged over every fit of this logger

    # ------------------------------------------------------------------ to implement
    def log_hparams(self, hparams: dict[str, Any]) -> None:
        """Write the hyper-parameters of a fit that starts."""

    def log_batches(self, first_step: int, losses: list[float], lrs: list[list[float]]) -> None:
        """Write the training loss and each group's learning rate of the epoch's batches,
        numbered from ``first_step``."""

    def log_epoch(self, values: dict[str, Any]) -> None:
        """Write an epoch's ``epoch``, ``train_loss``, ``valid_loss``, metrics and ``time``."""

    def log_figure(self, name: str, fig) -> None:
        """Write a matplotlib figure (closed afterwards by the caller)."""

    def close(self) -> None:
        """Flush and close what the fit opened."""

    # ------------------------------------------------------------------ events
    def before_fit(self) -> None:
        self._active = is_main_process()
        self._first_iter = 0
        if self._active:
            self.hparams = {**run_hparams(self.learn), **self.extra_hparams}
            json.dumps(self.hparams)  # a value a tracker could not store is an error here, not at the end
            self.log_hparams(self.hparams)

    def after_epoch(self) -> None:
        if not self._active:
            return
        rec = self.learn.recorder
        losses, lrs = rec.losses[self._first_iter :], rec.group_lrs[self._first_iter :]
        self.log_batches(self.step, [float(v) for v in losses], [[float(x) for x in g] for g in lrs])
        self.step += len(losses)
        self._first_iter = len(rec.losses)
        if rec.values:
            self.log_epoch(dict(rec.values[-1]))

    def after_fit(self) -> None:
        interp = None
        if self.figures and self.learn.dls.valid is not None:
            # on every process: under torchrun the predictions are gathered from all of them
            with self.learn.no_bar():
                interp = Interpretation.from_learner(self.learn)
        if not self._active:
            return
        try:
            if interp is not None:
                self._log_end_figures(interp)
        finally:
            self.close()

    def _log_end_figures(self, interp: Interpretation) -> None:
        import matplotlib.pyplot as plt

        fig = interp.plot_confusion_matrix(title="validation confusion matrix")
        self.log_figure("confusion_matrix", fig)
        plt.close(fig)
        pairs = interp.leading_pairs(self.min_count)
        if pairs:
            a, b, _ = pairs[0]
            fig = interp.plot_pair_gallery(a, b, k=3)
            if fig is not None:
                self.log_figure(f"gallery_{a}_vs_{b}", fig)
                plt.close(fig)
        finder = getattr(self.learn, "lr_find_result", None)
        if finder is not None:
            fig = finder.plot()
            self.log_figure("lr_find", fig)
            plt.close(fig)
