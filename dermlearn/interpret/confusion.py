"""Confusion-pair analysis on a confusion matrix (rows actual, columns predicted)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["leading_pairs", "most_confused"]


def _check(cm: np.ndarray, vocab: Sequence[str]) -> np.ndarray:
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape != (len(vocab), len(vocab)):
        raise ValueError(f"confusion matrix must be ({len(vocab)}, {len(vocab)}) for {len(vocab)} classes, got {cm.shape}")
    return cm


def most_confused(cm: np.ndarray, vocab: Sequence[str], min_val: int = 1) -> list[tuple[str, str, int]]:
    """Off-diagonal cells with at least ``min_val`` items as ``(actual, predicted, count)``,
    by count descending (ties: actual then predicted in vocab order)."""
    cm = _check(cm, vocab)
    cells = [(int(cm[i, j]), i, j) for i in range(len(vocab)) for j in range(len(vocab)) if i != j and cm[i, j] >= min_val]
    cells.sort(key=lambda t: (-t[0], t[1], t[2]))
    return [(vocab[i], vocab[j], n) for n, i, j in cells]


def leading_pairs(cm: np.ndarray, vocab: Sequence[str], min_count: int = 5) -> list[tuple[str, str, int]]:
    """Label pairs that account for most errors, as in the study's table: for each unordered
    pair ``{a, b}`` the count ``cm[a, b] + cm[b, a]`` (a predicted as b plus b as a), pairs
    with at least ``min_count``, by count descending. Each pair is named with the class that
    is more often mistaken for the other first."""
    cm = _check(cm, vocab)
    pairs = []
    for i in range(len(vocab)):
        for j in range(i + 1, len(vocab)):
            n = int(cm[i, j] + cm[j, i])
            if n >= min_count:
                a, b = (i, j) if cm[i, j] >= cm[j, i] else (j, i)
                pairs.append((n, min(i, j), max(i, j), a, b))
    pairs.sort(key=lambda t: (-t[0], t[1], t[2]))
    return [(vocab[a], vocab[b], n) for n, _, _, a, b in pairs]
