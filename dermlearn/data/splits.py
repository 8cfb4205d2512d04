"""Honest train/validation splits: stratified, grouped by patient or lesion, seeded."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["grouped_split", "stratified_split"]


def _check(labels: Sequence[int], valid_pct: float) -> np.ndarray:
    if not 0.0 < valid_pct < 1.0:
        raise ValueError(f"valid_pct must be in (0, 1), got {valid_pct}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) < 2:
        raise ValueError(f"need at least two labelled items to split, got {len(labels)}")
    return labels


def stratified_split(labels: Sequence[int], valid_pct: float = 1 / 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random split keeping each class's share: ``round(n_c * valid_pct)`` items of class
    ``c`` go to validation (at least one when the class has two or more items).

    Returns:
        Sorted train and validation indices.
    """
    labels = _check(labels, valid_pct)
    rng = np.random.default_rng(seed)
    valid = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        k = int(round(len(idx) * valid_pct))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        valid.extend(idx[:k].tolist())
    valid_idx = np.sort(np.array(valid, dtype=np.int64))
    train_idx = np.setdiff1d(np.arange(len(labels)), valid_idx)
    return train_idx, valid_idx


def grouped_split(labels: Sequence[int], groups: Sequence, valid_pct: float = 1 / 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split whole groups (patients, lesions): no group on both sides, class ratios of the
    validation set as close as possible to the whole.

    Greedy assignment: groups in descending size (ties in seeded random order) each go to
    the side whose per-class counts are furthest below their targets (``valid_pct`` and
    ``1 - valid_pct`` of each class), as a fraction of the target, weighted by the group's
    class counts. Both sides thus fill at one rate, and groups of every size reach both:
    on PAD-UFES-20, 38 % of the photos come from patients with several photos, and so do
    about as many of the validation photos. (Until commit a47448f the deficits were
    fractions of the class total: the training side took every large group first, and
    PAD-UFES-20's validation set held single-photo patients only.)

    Returns:
        Sorted train and validation indices.
    """
    labels = _check(labels, valid_pct)
    groups = np.asarray(groups, dtype=object)
    if len(groups) != len(labels):
        raise ValueError(f"{len(groups)} group values for {len(labels)} items")
    if any(g is None or (isinstance(g, float) and np.isnan(g)) for g in groups):
        raise ValueError("the group column has missing values; every item needs a group (patient or lesion id)")
    classes, y = np.unique(labels, return_inverse=True)
    uniq, g = np.unique(groups.astype(str), return_inverse=True)
    if len(uniq) < 2:
        raise ValueError("a grouped split needs at least two groups")
    counts = np.zeros((len(uniq), len(classes)))
    np.add.at(counts, (g, y), 1)
    total = counts.sum(0)
    target = np.stack([total * (1 - valid_pct), total * valid_pct])  # (2, C)
    have = np.zeros_like(target)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    order = order[np.argsort(-counts[order].sum(1), kind="stable")]
    side = np.zeros(len(uniq), dtype=np.int64)
    for k in order:
        need = (target - have) / target  # (2, C) deficit as a fraction of each side's target
        score = (need * counts[k]).sum(1)
        s = int(np.argmax(score))
        side[k] = s
        have[s] += counts[k]
    if not side.any():  # degenerate: force the smallest group to validation
        side[order[-1]] = 1
    valid_mask = side[g] == 1
    return np.flatnonzero(~valid_mask), np.flatnonzero(valid_mask)
