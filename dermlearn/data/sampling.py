"""Class balancing: static oversampling, per-epoch class-weighted sampling (rank-aware;
class-uniform for ``balance='resample'``), dynamic re-weighting from per-class recall, loss
weights. How they compare on PAD-UFES-20 and DermaMNIST: docs/experiments.md."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dermlearn.callback import Callback

__all__ = ["ClassWeightedSampler", "DynamicBalance", "inverse_frequency_weights", "oversample_indices", "recall_weights"]


def oversample_indices(labels: Sequence[int], seed: int = 0) -> np.ndarray:
    """Static balancing: every class brought to the size of the largest by drawing extra
    items of that class with replacement, once. Returns the fixed index list (each original
    item at least once)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    top = counts.max()
    out = []
    for c, n in zip(classes, counts):
        idx = np.flatnonzero(labels == c)
        out.append(idx)
        if n < top:
            out.append(rng.choice(idx, size=top - n, replace=True))
    return np.sort(np.concatenate(out))


def inverse_frequency_weights(labels: Sequence[int], n_classes: int, power: float = 1.0, beta: float | None = None) -> Tensor:
    """Per-class loss weights ``w_c ∝ E_c ** -power`` for the class counts ``n_c`` of ``labels``.

    ``E_c`` is the count ``n_c`` itself, or with ``beta`` the *effective number* of Cui et
    al. (2019), ``(1 - beta ** n_c) / (1 - beta)``, which grows like ``n_c`` for small
    counts and saturates at ``1 / (1 - beta)``. The weights are scaled so that their mean
    over the items is 1 (``sum_c n_c w_c = N``): the loss keeps its scale and ``power=1``
    gives ``N / (C n_c)``, 1 for every class when the classes are balanced. Classes
    without items get weight 0.

    Args:
        labels: Class index of each training item, in ``[0, n_classes)``.
        n_classes: Number of classes ``C`` (the length of the result).
        power: In ``[0, inf)``: 1 inverse frequency, 0.5 its square root (milder, for
            strong imbalance with few images of the rare classes), 0 no weighting.
        beta: In ``[0, 1)``; None for plain counts.

    Returns:
        Float32 tensor of shape ``(C,)``.
    """
    if not (np.isfinite(power) and power >= 0):
        raise ValueError(f"power must be a finite number >= 0, got {power}")
    if beta is not None and not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        raise ValueError("no labels: class weights need at least one training item")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes}), got {labels.min()} to {labels.max()}")
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = counts > 0
    effective = counts if beta is None else (1.0 - beta**counts) / (1.0 - beta)
    w = np.where(present, np.maximum(effective, 1e-300) ** -power, 0.0)
    w *= counts.sum() / (counts * w).sum()
    return torch.tensor(w, dtype=torch.float32)


def recall_weights(recall: Sequence[float], floor: float = 0.1) -> np.ndarray:
    """Class sampling weights from per-class recall: ``(1 - recall_c) + floor``, normalised
    to sum to 1. Weaker classes are drawn more; with ``floor > 0`` no class gets weight 0;
    equal recalls give equal weights. NaN recalls (class absent) get the mean weight."""
    if floor <= 0:
        raise ValueError(f"floor must be > 0 so that no class is starved, got {floor}")
    r = np.asarray(recall, dtype=np.float64)
    w = 1.0 - r + floor
    if np.isnan(w).all():
        return np.full(len(r), 1.0 / len(r))
    w = np.where(np.isnan(w), np.nanmean(w), w)
    return w / w.sum()


class ClassWeightedSampler:
    """Draws ``num_samples`` item indices per epoch with replacement so that class ``c`` is
    drawn with probability ``class_weights[c]`` (uniform within a class).

    Rank-aware: every rank draws the same global sequence (seeded by ``seed`` and the
    epoch) and keeps every ``world_size``-th index from its ``rank``, so the weights and
    the draws agree on all ranks.

    Args:
        labels: Class index of each item.
        class_weights: One weight per class (normalised internally); default uniform over
            the classes present.
        num_samples: Draws per epoch over all ranks (default: the number of items).
        seed: Base seed.
        rank, world_size: This process's place in a distributed run.
    """

    def __init__(self, labels: Sequence[int], class_weights: Sequence[float] | None = None, num_samples: int | None = None,
                 seed: int = 0, rank: int = 0, world_size: int = 1) -> None:  # fmt: skip
        self.labels = np.asarray(labels, dtype=np.int64)
        self.n_classes = int(self.labels.max()) + 1 if len(self.labels) else 0
        self.counts = np.bincount(self.labels, minlength=self.n_classes)
        self.num_samples = int(num_samples if num_samples is not None else len(self.labels))
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        if class_weights is None:
            class_weights = (self.counts > 0).astype(np.float64)
        self.set_class_weights(class_weights)

    def set_class_weights(self, w: Sequence[float]) -> None:
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (self.n_classes,) or (w < 0).any() or not np.isfinite(w).all():
            raise ValueError(f"class weights must be {self.n_classes} finite non-negative values, got {w}")
        w = np.where(self.counts > 0, w, 0.0)
        if w.sum() <= 0:
            raise ValueError("every class present has weight 0")
        self.class_weights = w / w.sum()
        self._item_p = torch.from_numpy(self.class_weights[self.labels] / self.counts[self.labels])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> np.ndarray:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        idx = torch.multinomial(self._item_p, self.num_samples, replacement=True, generator=g).numpy()
        return idx[self.rank :: self.world_size]

    def __len__(self) -> int:
        return len(range(self.rank, self.num_samples, self.world_size))

    def state_dict(self) -> dict[str, Any]:
        return {"class_weights": self.class_weights.tolist(), "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.set_class_weights(state["class_weights"])
        self.epoch = state["epoch"]


class DynamicBalance(Callback):
    """Re-weight the training sampler every epoch from the per-class recall of the epoch
    just run (see :func:`recall_weights`): on the validation set (the default) or on the
    training batches.

    The training loader must sample with a :class:`ClassWeightedSampler` (``DermData``
    builds one with ``balance='dynamic'``). Weights start uniform over classes.

    Args:
        floor: Added to every class's ``1 - recall`` (> 0: no class is starved).
        momentum: In ``[0, 1)``. The new weights are ``momentum * old + (1 - momentum) *
            recall_weights(recall)``; 0 takes the latest recall alone. With few validation
            images per class, recall jumps between epochs and so do the weights; a
            momentum damps that.
        source: ``'valid'``: recall on the validation set, after it is evaluated (which
            makes validation metrics an optimistic estimate: the weights were tuned on
            them). ``'train'``: recall of the training batches' predictions during the
            epoch (augmented inputs, the model as it changes; no extra forward pass and
            no validation images used), computed before validation.

    Attributes:
        history: The class weights used in each epoch.
    """

    order = 52

    def __init__(self, floor: float = 0.1, momentum: float = 0.0, source: str = "valid") -> None:
        super().__init__()
        if floor <= 0:
            raise ValueError(f"floor must be > 0 so that no class is starved, got {floor}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if source not in ("valid", "train"):
            raise ValueError(f"source must be 'valid' or 'train', got {source!r}")
        self.floor, self.momentum, self.source = floor, momentum, source
        self.run_train, self.run_valid = source == "train", source == "valid"  # which batches after_loss counts
        self.history: list[list[float]] = []
        self._total: Tensor | None = None
        self._correct: Tensor | None = None

    def _sampler(self) -> ClassWeightedSampler:
        s = getattr(self.learn.dls.train, "sampler", None)
        if not isinstance(s, ClassWeightedSampler):
            raise TypeError("DynamicBalance needs a training loader that samples with a ClassWeightedSampler (DermData.dls(balance='dynamic'))")
        return s

    def before_fit(self) -> None:
        self._sampler()

    def before_epoch(self) -> None:
        self.history.append(self._sampler().class_weights.tolist())
        self._total = self._correct = None

    def after_loss(self) -> None:
        learn = self.learn
        c = learn.pred.shape[1]
        y = learn.yb.argmax(1) if learn.yb.ndim == 2 else learn.yb
        hit = (learn.pred.argmax(1) == y).float()
        # scatter_add into fixed-size tensors: bincount would sync with the GPU to size its output
        total = torch.zeros(c, device=y.device).scatter_add_(0, y, torch.ones_like(hit))
        correct = torch.zeros(c, device=y.device).scatter_add_(0, y, hit)
        self._total = total if self._total is None else self._total + total
        self._correct = correct if self._correct is None else self._correct + correct

    def before_validate(self) -> None:
        if self.source == "valid":
            self._total = self._correct = None

    def after_train(self) -> None:
        if self.source == "train":
            self._update()

    def after_validate(self) -> None:
        if self.source == "valid":
            self._update()

    def _update(self) -> None:
        if self._total is None:
            return
        total, correct = self.learn.all_reduce_sum(self._total), self.learn.all_reduce_sum(self._correct)
        recall = (correct / total).cpu().numpy()  # NaN for classes absent from the counted batches
        sampler = self._sampler()
        recall = recall[: sampler.n_classes]
        new = recall_weights(recall, self.floor)
        sampler.set_class_weights(self.momentum * sampler.class_weights + (1.0 - self.momentum) * new)

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = state["history"]
