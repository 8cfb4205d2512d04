"""The learning-rate range test (Smith 2017) and its suggestion functions.

:func:`lr_find` raises the learning rate exponentially from ``start_lr`` to ``end_lr`` over
``num_it`` training iterations, records the smoothed loss, and stops early when the loss
diverges. It has no side effects: model weights and buffers, optimizer state, every
random generator (Python, NumPy, torch CPU and CUDA), the callbacks' state (Recorder history,
balancing weights, ...) and the loaders' epoch counters are restored afterwards, and nothing
is written to disk (the snapshot is kept in memory).

Suggestions (named functions, as fastai's, computed on the window
``lrs[num_it // 10 : -5]`` of the recorded curve):

* ``valley``: the start of the longest descending run of the smoothed loss, 2/3 of the
  way into it (fastai's default);
* ``slide``: the lr past which the loss stops improving, with an interval slide rule;
* ``minimum``: the lr at the minimum loss divided by 10;
* ``steep``: the lr where the loss falls fastest (steepest negative gradient in log-lr).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from dermlearn.callback import Callback, CancelFitException, CancelValidException

from .checkpoint import capture_state, restore_state
from .progress import ProgressCallback

__all__ = ["LRFinder", "LRFindResult", "lr_find", "minimum", "slide", "steep", "valley"]

Suggestion = Callable[[np.ndarray, np.ndarray, int], float]


def _window(lrs: np.ndarray, losses: np.ndarray, num_it: int) -> tuple[np.ndarray, np.ndarray]:
    lo = num_it // 10
    hi = len(lrs) - 5
    if hi - lo < 2:  # too short a run (stopped early): use what there is
        lo, hi = 0, len(lrs)
    return lrs[lo:hi], losses[lo:hi]


def minimum(lrs: np.ndarray, losses: np.ndarray, num_it: int) -> float:
    """Learning rate at the minimum of the loss, divided by 10."""
    lrs, losses = _window(lrs, losses, num_it)
    return float(lrs[int(np.argmin(losses))] / 10)


def steep(lrs: np.ndarray, losses: np.ndarray, num_it: int) -> float:
    """Learning rate where the loss falls fastest: the left end of the steepest forward
    difference of the loss against ``log(lr)``."""
    lrs, losses = _window(lrs, losses, num_it)
    grads = np.diff(losses) / np.diff(np.log(lrs))
    return float(lrs[int(np.argmin(grads))])


def valley(lrs: np.ndarray, losses: np.ndarray, num_it: int) -> float:
    """The longest run of decreasing loss (a valley), 2/3 of the way down it.

    The run is found with a longest-decreasing-subsequence pass over the loss curve (as in
    fastai's ``valley``); the suggestion sits at ``start + (end - start) * 2/3``.
    """
    lrs, losses = _window(lrs, losses, num_it)
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return float(lrs[idx])


def slide(lrs: np.ndarray, losses: np.ndarray, num_it: int, lr_diff: int = 15, thresh: float = 0.005, adjust_value: float = 1.0) -> float:
    """Interval slide rule: walk back from the end while the loss gradient at two points
    ``lr_diff`` apart differs by more than ``thresh``; the suggestion is the left point
    where it stops (fastai's ``slide``)."""
    lrs, losses = _window(lrs, losses, num_it)
    loss_grad = np.gradient(losses)
    r_idx = -1
    l_idx = r_idx - min(lr_diff, len(losses) - 1)
    local_min_lr = lrs[l_idx]
    while l_idx >= -len(losses) and abs(loss_grad[r_idx] - loss_grad[l_idx]) > thresh:
        local_min_lr = lrs[l_idx]
        r_idx -= 1
        l_idx -= 1
    return float(local_min_lr * adjust_value)


@dataclass
class LRFindResult:
    """What :func:`lr_find` returns.

    Attributes:
        lrs: Learning rate of each recorded iteration (float64).
        losses: Smoothed training loss of each recorded iteration.
        suggestions: Suggestion name -> learning rate.
        stopped_early: True when the loss diverged (or became non-finite) before ``num_it``.
    """

    lrs: np.ndarray
    losses: np.ndarray
    suggestions: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False

    def __getattr__(self, name: str) -> float:
        sugg = self.__dict__.get("suggestions", {})
        if name in sugg:
            return sugg[name]
        raise AttributeError(name)

    def plot(self, skip_end: int = 5, ax=None, used: float | None = None):
        """Loss against learning rate (log scale) with the suggestions marked, and the rate
        that training then ``used`` (e.g. the recipe's choice) as a dashed line. Returns the
        Figure (constrained layout: the axis labels stay inside it)."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
        else:
            fig = ax.figure
        end = len(self.lrs) - skip_end if len(self.lrs) > skip_end + 2 else len(self.lrs)
        ax.plot(self.lrs[:end], self.losses[:end])
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss (smoothed)")
        for (name, lr), marker in zip(self.suggestions.items(), "o^sv"):
            i = int(np.argmin(np.abs(np.log(self.lrs[:end]) - math.log(lr)))) if lr > 0 else 0
            ax.plot(self.lrs[i], self.losses[i], marker, label=f"{name}: {lr:.2e}")
        if used is not None:
            ax.axvline(used, color="k", linestyle="--", linewidth=1, label=f"used for training: {used:.2e}")
        if self.suggestions or used is not None:
            ax.legend()
        return fig


class LRFinder(Callback):
    """Exponentially increase the lr each training batch; stop when the loss diverges.

    Iteration ``i`` (0-based) uses ``start_lr * (end_lr / start_lr) ** (i / num_it)``.
    Validation is skipped. With ``stop_div``, the sweep stops before any step is taken on
    a non-finite loss, or once the smoothed loss exceeds 4x its best. With ``bar``, one
    progress bar counts the ``num_it`` iterations (the sweep runs for minutes on a CPU).
    """

    order = 1
    run_valid = False

    def __init__(self, start_lr: float = 1e-7, end_lr: float = 10.0, num_it: int = 100, stop_div: bool = True,
                 bar: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.bar = bar
        self._pbar = None
        if not 0 < start_lr < end_lr:
            raise ValueError(f"lr_find needs 0 < start_lr < end_lr, got {start_lr}, {end_lr}")
        if num_it < 2:
            raise ValueError(f"lr_find needs num_it >= 2, got {num_it}")
        self.start_lr, self.end_lr, self.num_it, self.stop_div = start_lr, end_lr, num_it, stop_div

    def before_fit(self) -> None:
        self.lrs: list[float] = []
        self.raw: list[float] = []
        self.smoothed: list[float] = []
        self.best = math.inf
        self.i = 0
        self._avg = 0.0
        self.stopped_early = False
        if self.bar:
            from tqdm.auto import tqdm

            self._pbar = tqdm(total=self.num_it, desc="lr_find", leave=False, mininterval=0.5, dynamic_ncols=True)

    def before_batch(self) -> None:
        lr = self.start_lr * (self.end_lr / self.start_lr) ** (self.i / self.num_it)
        self.learn.set_hyper("lr", lr)
        self._lr = lr

    def after_loss(self) -> None:
        loss = float(self.learn.loss)  # the range test needs each loss on the host
        if not math.isfinite(loss):
            self.stopped_early = True
            raise CancelFitException()  # before backward/step: no NaN reaches the weights
        self.i += 1
        self._avg = 0.98 * self._avg + 0.02 * loss
        sm = self._avg / (1 - 0.98**self.i)
        self.lrs.append(self._lr)
        self.raw.append(loss)
        self.smoothed.append(sm)
        if self.stop_div and (not math.isfinite(sm) or sm > 4 * self.best):
            self.stopped_early = True
            raise CancelFitException()
        self.best = min(self.best, sm)

    def after_batch(self) -> None:
        if self._pbar is not None:
            self._pbar.update(1)
        if self.i >= self.num_it:
            raise CancelFitException()

    def after_fit(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None

    def before_validate(self) -> None:
        raise CancelValidException()


def lr_find(
    learn,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_it: int = 100,
    stop_div: bool = True,
    suggest_funcs: Sequence[Suggestion] = (valley,),
    show_plot: bool = True,
) -> LRFindResult:
    """Run the LR range test on ``learn`` and restore it exactly afterwards.

    Args:
        learn: A :class:`~dermlearn.training.learner.Learner`.
        start_lr: First learning rate (> 0).
        end_lr: Learning rate reached after ``num_it`` iterations.
        num_it: Number of training iterations (epochs are repeated as needed).
        stop_div: Stop when the smoothed loss exceeds 4x its minimum.
        suggest_funcs: Functions ``(lrs, losses, num_it) -> lr`` (:func:`valley`,
            :func:`slide`, :func:`minimum`, :func:`steep`); results are keyed by name.
        show_plot: Draw loss against lr with the suggestions (shown in notebooks).

    Returns:
        An :class:`LRFindResult` (``result.valley`` etc. give the suggestions).
    """
    if learn.opt is None:
        learn.create_opt()
    # the same snapshot as a checkpoint (model, optimizer, callbacks, RNGs, loaders, augmentation),
    # deep-copied: the sweep updates the optimizer's state tensors in place
    state = copy.deepcopy(capture_state(learn))
    # the learner's epoch bars and table make no sense for a sweep: one bar of its iterations
    # instead, where the learner shows bars
    bar = any(isinstance(c, ProgressCallback) and c.bar for c in learn.cbs)
    finder = LRFinder(start_lr, end_lr, num_it, stop_div, bar=bar)
    n_epoch = math.ceil(num_it / max(len(learn.dls.train), 1))
    temperature, learn.temperature = learn.temperature, 1.0  # the sweep trains, then the model comes back as it was
    try:
        with learn.no_bar():
            learn.fit(n_epoch, cbs=[finder])
    finally:
        restore_state(learn, state)
        learn.temperature = temperature
        learn.opt.zero_grad(set_to_none=True)
    lrs = np.asarray(finder.lrs, dtype=np.float64)
    losses = np.asarray(finder.smoothed, dtype=np.float64)
    result = LRFindResult(lrs, losses, stopped_early=finder.stopped_early)
    if len(lrs) >= 3:
        result.suggestions = {f.__name__: f(lrs, losses, num_it) for f in suggest_funcs}
    if show_plot:
        result.plot()
    return result

