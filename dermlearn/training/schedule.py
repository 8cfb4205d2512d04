"""Hyper-parameter schedules as pure functions of training progress, and the callback that
applies them.

A schedule maps progress ``pos`` in ``[0, 1]`` to a value (a float, or a NumPy array with
one value per layer group). Values are computed in float64.

Convention (the same as fastai's, so that its traces are reproduced): training iteration
``i`` of ``N`` uses ``sched(i / N)``. The value at ``pos = 1`` (for one-cycle,
``lr_max / div_final``) is the limit the schedule reaches at the end of training; it is
never applied to a step.

Segment boundaries of :func:`combine_scheds` are computed exactly when given as
:class:`fractions.Fraction` (what :func:`sgdr_scheds` does): an SGDR restart therefore falls
exactly on its integer iteration and its first step uses ``lr_max`` exactly (fastai computes
boundaries with a float32 cumulative sum and restarts one batch late at cycle 3).
"""

from __future__ import annotations

import math
import numbers
from bisect import bisect_right
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Union

import numpy as np

from dermlearn.callback import Callback

from .optim import set_hyper

__all__ = [
    "ParamScheduler",
    "Schedule",
    "SchedCos",
    "SchedExp",
    "SchedLin",
    "SchedNo",
    "SchedPoly",
    "combine_scheds",
    "flat_cos_scheds",
    "one_cycle_scheds",
    "sgdr_scheds",
]

Value = Union[float, np.ndarray]
Schedule = Callable[[float], Value]


def _arr(v: Value) -> Value:
    return np.asarray(v, dtype=np.float64) if isinstance(v, (list, tuple, np.ndarray)) else float(v)


class _Sched:
    """A schedule from ``start`` to ``end`` (floats or per-group arrays)."""

    def __init__(self, start: Value, end: Value) -> None:
        self.start, self.end = _arr(start), _arr(end)

    def __call__(self, pos: float) -> Value:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.start}, {self.end})"


class SchedLin(_Sched):
    """Linear: ``start + pos * (end - start)``."""

    def __call__(self, pos: float) -> Value:
        return self.start + pos * (self.end - self.start)


class SchedCos(_Sched):
    """Cosine annealing: ``start + (1 + cos(pi * (1 - pos))) * (end - start) / 2``."""

    def __call__(self, pos: float) -> Value:
        return self.start + (1.0 + math.cos(math.pi * (1.0 - pos))) * (self.end - self.start) / 2.0


class SchedNo(_Sched):
    """Constant ``start`` (``end`` is ignored)."""

    def __call__(self, pos: float) -> Value:
        return self.start


class SchedExp(_Sched):
    """Exponential: ``start * (end / start) ** pos``; ``start`` must be positive."""

    def __init__(self, start: Value, end: Value) -> None:
        super().__init__(start, end)
        if np.any(np.asarray(self.start) <= 0):
            raise ValueError(f"SchedExp needs start > 0, got {start}")

    def __call__(self, pos: float) -> Value:
        return self.start * (self.end / self.start) ** pos


class SchedPoly(_Sched):
    """Polynomial: ``start + (end - start) * pos ** power``."""

    def __init__(self, start: Value, end: Value, power: float) -> None:
        super().__init__(start, end)
        self.power = power

    def __call__(self, pos: float) -> Value:
        return self.start + (self.end - self.start) * pos**self.power


class combine_scheds:  # noqa: N801 - a function-like factory, named as in fastai
    """Chain schedules: ``scheds[k]`` runs over a fraction ``pcts[k]`` of training.

    Args:
        pcts: Fractions of training, summing to 1. Pass :class:`fractions.Fraction` (or
            integers, taken as relative weights) for exact boundaries.
        scheds: One schedule per segment, each called with its local progress in [0, 1].
    """

    def __init__(self, pcts: Sequence[float | Fraction | int], scheds: Sequence[Schedule]) -> None:
        if len(pcts) != len(scheds):
            raise ValueError(f"pcts has {len(pcts)} entries but scheds has {len(scheds)}")
        if any(p < 0 for p in pcts):
            raise ValueError(f"pcts must be non-negative, got {list(pcts)}")
        exact = all(isinstance(p, (Fraction, int)) for p in pcts)
        if exact:
            total = sum(Fraction(p) for p in pcts)
            cum = [Fraction(0)]
            for p in pcts:
                cum.append(cum[-1] + Fraction(p))
            bounds = [float(c / total) for c in cum]
        else:
            total_f = math.fsum(float(p) for p in pcts)
            if abs(total_f - 1.0) > 1e-6:
                raise ValueError(f"pcts must sum to 1, got {total_f}")
            bounds = [0.0]
            acc: list[float] = []
            for p in pcts:
                acc.append(float(p))
                bounds.append(math.fsum(acc))
        self.bounds = bounds
        self.scheds = list(scheds)

    def __call__(self, pos: float) -> Value:
        # Segment k holds bounds[k] <= pos < bounds[k + 1]; pos == 1 belongs to the last one.
        k = min(max(bisect_right(self.bounds, pos) - 1, 0), len(self.scheds) - 1)
        while k < len(self.scheds) - 1 and self.bounds[k + 1] == self.bounds[k]:
            k += 1  # skip empty segments
        lo, hi = self.bounds[k], self.bounds[k + 1]
        local = 0.0 if hi == lo else min(max((pos - lo) / (hi - lo), 0.0), 1.0)
        return self.scheds[k](local)

    def __repr__(self) -> str:
        return f"combine_scheds(bounds={self.bounds}, scheds={self.scheds})"


def one_cycle_scheds(
    lr_max: Value,
    div: float = 25.0,
    div_final: float = 1e5,
    pct_start: float = 0.25,
    moms: tuple[float, float, float] | None = (0.95, 0.85, 0.95),
) -> dict[str, Schedule]:
    """Smith's one-cycle policy: cosine warm-up from ``lr_max/div`` to ``lr_max`` over
    ``pct_start`` of training, then cosine annealing to ``lr_max/div_final``; momentum
    goes the opposite way ``moms[0] -> moms[1] -> moms[2]``.

    ``lr_max`` may be an array with one value per layer group.
    """
    lr_max = _arr(lr_max)
    pcts = [pct_start, 1.0 - pct_start]
    scheds: dict[str, Schedule] = {
        "lr": combine_scheds(pcts, [SchedCos(lr_max / div, lr_max), SchedCos(lr_max, lr_max / div_final)])
    }
    if moms is not None:
        scheds["mom"] = combine_scheds(pcts, [SchedCos(moms[0], moms[1]), SchedCos(moms[1], moms[2])])
    return scheds


def flat_cos_scheds(lr: Value, div_final: float = 1e5, pct_start: float = 0.75) -> dict[str, Schedule]:
    """Flat at ``lr`` for ``pct_start`` of training, then cosine to ``lr/div_final``."""
    lr = _arr(lr)
    return {"lr": combine_scheds([pct_start, 1.0 - pct_start], [SchedNo(lr, lr), SchedCos(lr, lr / div_final)])}


def sgdr_cycle_epochs(n_cycles: int, cycle_len: int, cycle_mult: int = 2) -> list[int]:
    """Cycle lengths in epochs: ``cycle_len * cycle_mult**i`` for ``i < n_cycles``."""
    values = (n_cycles, cycle_len, cycle_mult)
    if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in values) or min(values) < 1:
        raise ValueError(
            f"fit_sgdr needs n_cycles >= 1, cycle_len >= 1 and cycle_mult >= 1 (integers), "
            f"got n_cycles={n_cycles!r}, cycle_len={cycle_len!r}, cycle_mult={cycle_mult!r}"
        )
    return [int(cycle_len) * int(cycle_mult) ** i for i in range(int(n_cycles))]


def sgdr_scheds(
    n_cycles: int, cycle_len: int, lr_max: Value, cycle_mult: int = 2, eta_min: float = 0.0
) -> tuple[dict[str, Schedule], int]:
    """SGDR (Loshchilov & Hutter 2017): cosine from ``lr_max`` to ``eta_min`` in each cycle,
    warm restarts, cycle ``i`` lasting ``cycle_len * cycle_mult**i`` epochs.

    Returns:
        The schedules and the total number of epochs. Boundaries are exact fractions, so
        each restart falls on a whole iteration and starts at ``lr_max`` exactly.
    """
    lengths = sgdr_cycle_epochs(n_cycles, cycle_len, cycle_mult)
    n_epoch = sum(lengths)
    lr_max = _arr(lr_max)
    pcts = [Fraction(n, n_epoch) for n in lengths]
    return {"lr": combine_scheds(pcts, [SchedCos(lr_max, eta_min) for _ in lengths])}, n_epoch


class ParamScheduler(Callback):
    """Set optimizer hyper-parameters before every training batch from schedules.

    Progress of iteration ``i`` of epoch ``e`` is ``(e * n_iter + i) / (n_epoch * n_iter)``,
    computed from integers (so ``fit(..., start_epoch=k)`` resumes at the right place).

    Args:
        scheds: Maps a hyper-parameter name (``lr``, ``mom``, ``sqr_mom``, ``wd``, ``eps``)
            to a schedule. A schedule returning an array sets one value per layer group.
    """

    order = 0
    run_valid = False

    def __init__(self, scheds: dict[str, Schedule]) -> None:
        super().__init__()
        self.scheds = dict(scheds)

    def before_fit(self) -> None:
        self._set_hyper = set_hyper

    def before_batch(self) -> None:
        learn = self.learn
        pos = (learn.epoch * learn.n_iter + learn.iter) / (learn.n_epoch * learn.n_iter)
        for name, sched in self.scheds.items():  # a scalar or one value per layer group
            self._set_hyper(learn.opt, name, sched(pos))

    def __repr__(self) -> str:
        return f"ParamScheduler({self.scheds})"
