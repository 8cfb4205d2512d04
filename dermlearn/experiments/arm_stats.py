"""Arms compared over seeds: each score's mean with its 95% Student-t interval, paired
differences to a baseline arm, their plot, and how soon each arm's curve reaches a level.
The arms of one seed share initial weights, data and augmentation seed, so a paired
difference is steadier than either arm's spread over seeds.

On one fixed test split (DermaMNIST's) the seeds differ in training only, and the plain t
interval is the one to read. Where each seed draws its own split of one dataset (PAD-UFES-20's
repeated patient splits), the seeds' training and test sets overlap, their scores are
correlated, and the plain t interval is too narrow: ``test_train_ratio`` (test items / items
the model was trained and chosen on) then widens it by Nadeau and Bengio's correction
(Machine Learning 52, 2003): the variance of the mean is ``s^2 (1/J + n_test/n_train)`` in
place of ``s^2 / J`` for ``J`` seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .dermamnist import t_interval

__all__ = ["SCORES", "interval", "paired_intervals", "plot_arms", "summary", "time_to_level", "time_to_level_table"]

SCORES = {"acc": "ACC", "balanced_accuracy": "balanced accuracy", "auc": "AUC"}
"""Per-seed result columns (as :func:`~dermlearn.experiments.dermamnist.run_seed` names
them) and their names in the tables."""


def interval(values: list[float], test_train_ratio: float | None = None) -> tuple[float, float, float]:
    """Mean of ``values`` (one per seed) and its 95% t interval; with ``test_train_ratio``,
    widened by ``sqrt(1 + J * test_train_ratio)`` for ``J`` values (Nadeau and Bengio's
    corrected resampled t, for seeds that each drew their own split of one dataset)."""
    mean, lo, hi = t_interval(values)
    if test_train_ratio is None:
        return mean, lo, hi
    if test_train_ratio < 0:
        raise ValueError(f"test_train_ratio must be >= 0, got {test_train_ratio}")
    half = (hi - mean) * math.sqrt(1.0 + len(values) * test_train_ratio)
    return mean, mean - half, mean + half


def summary(runs: pd.DataFrame, classes: list[str], test_train_ratio: float | None = None) -> pd.DataFrame:
    """One row per arm (in run order): each score's mean over seeds with its 95% interval
    (see :func:`interval`), and the mean recall of each class."""
    rows = []
    for arm, g in runs.groupby("arm", sort=False):
        row: dict = {"arm": arm, "seeds": len(g)}
        for col, name in SCORES.items():
            mean, lo, hi = interval(g[col].tolist(), test_train_ratio)
            row |= {name: mean, f"{name} low": lo, f"{name} high": hi}
        row |= {f"recall {c}": float(g[f"recall_{c}"].mean()) for c in classes}
        rows.append(row)
    return pd.DataFrame(rows)


def paired_intervals(runs: pd.DataFrame, baseline: str, test_train_ratio: float | None = None) -> pd.DataFrame:
    """Each arm minus ``baseline``, seed by seed, for each score: the mean difference, its
    95% interval (see :func:`interval`) and whether the interval excludes zero."""
    rows = []
    for col, name in SCORES.items():
        wide = runs.pivot(index="seed", columns="arm", values=col)
        for arm in [a for a in dict.fromkeys(runs["arm"]) if a != baseline]:
            d = (wide[arm] - wide[baseline]).dropna()
            mean, lo, hi = interval(d.tolist(), test_train_ratio)
            rows.append({"arm": arm, "score": name, "difference": mean, "low": lo, "high": hi, "seeds": len(d),
                         "per seed": " ".join(f"{v:+.3f}" for v in d),
                         "excludes 0": bool(lo > 0 or hi < 0) if len(d) > 1 else False})  # fmt: skip
    return pd.DataFrame(rows)


def time_to_level(curves: pd.DataFrame, levels: Sequence[float], score: str = "test_acc", clock: str = "train_s"
                  ) -> pd.DataFrame:  # fmt: skip
    """When each arm's curve first reaches each score level, seed by seed: the measure
    behind "reaches a given accuracy sooner".

    Args:
        curves: One row per arm, seed and epoch: ``arm``, ``seed``, ``clock`` (seconds from
            the start of the arm's clock to the end of the epoch) and ``score``. Row order
            does not matter.
        levels: Score levels, in the score's units (e.g. test accuracies 0.70-0.76).
        score: The column whose curve is followed.
        clock: The column of seconds.

    Returns:
        One row per arm, seed and level (arms and seeds in their first-seen order):
        ``seconds`` to the first epoch whose score is >= the level; NaN where the curve
        never reaches it.

    Raises:
        ValueError: A column is missing, or ``levels`` is empty.
    """
    missing = [c for c in ("arm", "seed", clock, score) if c not in curves.columns]
    if missing:
        raise ValueError(f"curves lacks the column(s) {missing}; it has {list(curves.columns)}")
    if not len(levels):
        raise ValueError("levels is empty: give at least one score level")
    rows = []
    for (arm, seed), c in curves.groupby(["arm", "seed"], sort=False):
        c = c.sort_values(clock)
        for level in levels:
            hit = c.loc[c[score] >= level, clock]
            rows.append({"arm": arm, "seed": seed, "level": float(level),
                         "seconds": float(hit.iloc[0]) if len(hit) else math.nan})  # fmt: skip
    return pd.DataFrame(rows)


def time_to_level_table(times: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """:func:`time_to_level`'s rows as one row per level: each arm's mean minutes to reach
    it over the seeds that did, with how many did (``'3.1 (3/3)'``; ``'- (0/3)'``: none
    did), and the speed-up of ``baseline`` against each other arm, ``arm seconds /
    baseline seconds`` seed by seed, averaged over the seeds where both reached the level,
    with its 95% t interval over those seeds where there are two or more (``'1.20 [0.90,
    1.50] (3/3)'``, ``'0.80 (1/3)'``; above 1: ``baseline`` got there sooner).

    Raises:
        ValueError: ``baseline`` is not one of the arms.
    """
    arms = list(dict.fromkeys(times["arm"]))
    if baseline not in arms:
        raise ValueError(f"baseline {baseline!r} is not one of the arms {arms}")
    n = times["seed"].nunique()
    rows = []
    for level, g in times.groupby("level", sort=False):
        wide = g.pivot(index="seed", columns="arm", values="seconds")
        row: dict = {"level": level}
        for arm in arms:
            s = wide[arm].dropna()
            row[f"{arm} (min)"] = f"{s.mean() / 60:.1f} ({len(s)}/{n})" if len(s) else f"- (0/{n})"
        for arm in arms:
            if arm != baseline:
                r = (wide[arm] / wide[baseline]).dropna()
                cell = f"- (0/{n})"
                if len(r):
                    mean, lo, hi = t_interval(r.tolist())
                    cell = f"{mean:.2f}{f' [{lo:.2f}, {hi:.2f}]' if len(r) > 1 else ''} ({len(r)}/{n})"
                row[f"speed-up vs {arm}"] = cell
        rows.append(row)
    return pd.DataFrame(rows)


def plot_arms(table: pd.DataFrame, classes: list[str], title: str, interval_name: str = "95% t interval"):
    """Left: test accuracy and balanced accuracy per arm (rows of :func:`summary`) with
    their 95% intervals over seeds (``interval_name`` labels them). Right: per-class test
    recall per arm. Returns the Figure."""
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 0.5 * len(table) + 2.5), layout="constrained")
    y = np.arange(len(table))
    for i, name in enumerate(("ACC", "balanced accuracy")):
        err = np.abs(np.stack([table[name] - table[f"{name} low"], table[f"{name} high"] - table[name]])) if len(table) else None
        err = None if err is None or np.isnan(err).any() else err
        ax.barh(y - 0.2 + 0.4 * i, table[name], height=0.4, xerr=err, capsize=3, label=name, color=f"C{i}")
    ax.set_yticks(y, table["arm"])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"test score (mean over seeds, {interval_name})")
    ax.legend(fontsize=8, loc="lower right")
    x = np.arange(len(classes))
    w = 0.8 / max(len(table), 1)
    for i, row in table.iterrows():
        ax2.bar(x - 0.4 + w * (i + 0.5), [row[f"recall {c}"] for c in classes], width=w, label=row["arm"])
    ax2.set_xticks(x, classes)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("test recall (mean over seeds)")
    ax2.legend(fontsize=7)
    fig.suptitle(title)
    return fig
