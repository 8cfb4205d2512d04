"""Test-time augmentation: :func:`tta` (``learn.tta``)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

__all__ = ["tta"]


def tta(learn, dl: Iterable | None = None, n: int = 4, beta: float = 0.25) -> tuple[Tensor, Tensor]:
    """The mean probabilities of ``n`` passes over ``dl`` (default: the validation loader)
    with the training augmentations (``learn.dls.train_tfms``), blended with the plain pass
    as fastai does: ``(1 - beta) * mean_augmented + beta * plain``.

    Returns:
        ``(probs, targets)`` on the CPU, ``(N, C)`` and ``(N,)``.

    Raises:
        ValueError: ``beta`` outside [0, 1] or ``n`` below 1.
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    plain, targets = learn.get_preds(dl)
    augmented = []
    learn._augment_valid = True
    try:
        for _ in range(n):
            augmented.append(learn.get_preds(dl)[0])
    finally:
        learn._augment_valid = False
    return (1 - beta) * torch.stack(augmented).mean(0) + beta * plain, targets
