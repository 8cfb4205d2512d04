"""``TimeBudget``: stop a fit before it runs past a wall-clock budget.

Comparisons "at equal budget" (the study's speed-up measure, a recipe against the tools a
user would pick instead) need every arm to stop at the same wall-clock time. The callback
ends the fit after the epoch whose successor would not finish inside the budget (judged by
the longest epoch so far), so no epoch is cut in half and validation always runs.
"""

from __future__ import annotations

import time

from dermlearn.callback import Callback, CancelFitException

__all__ = ["TimeBudget"]


class TimeBudget(Callback):
    """Stop training once the next epoch would end past ``seconds`` from the fit's start.

    Args:
        seconds: The budget, > 0 (validation passes count too).

    Attributes:
        elapsed: Seconds from the start of the fit to the end of the last epoch.
        stopped_epoch: The last epoch run when the budget stopped the fit, else None.
    """

    order = 62  # after EarlyStopping / SaveModelCallback have seen the epoch

    def __init__(self, seconds: float) -> None:
        super().__init__()
        if not seconds > 0:
            raise ValueError(f"seconds must be > 0, got {seconds}")
        self.seconds = float(seconds)
        self.elapsed = 0.0
        self.stopped_epoch: int | None = None

    def before_fit(self) -> None:
        self._t0 = self._last = time.perf_counter()
        self._longest = 0.0
        self.stopped_epoch = None

    def after_epoch(self) -> None:
        now = time.perf_counter()
        self._longest = max(self._longest, now - self._last)
        self._last = now
        self.elapsed = now - self._t0
        more = self.learn.epoch + 1 < self.learn.n_epoch
        if more and self.elapsed + self._longest > self.seconds:
            self.stopped_epoch = self.learn.epoch
            raise CancelFitException()
