"""``DataLoaders``: a training and a validation loader plus what the Learner needs to know.

The loaders are plain :class:`torch.utils.data.DataLoader` objects (or any iterable with
``len``) yielding ``(x, y)`` batches. Images travel as they are stored (typically uint8
``(B, C, H, W)``) and are turned into model inputs on the model's device by
``batch_tfms`` (e.g. :class:`~dermlearn.transforms.Normalize`), so the host never converts pixels to float.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["DataLoaders"]

BatchTfm = Callable[[Tensor], Tensor]


class DataLoaders:
    """A training loader, an optional validation loader, and the batch transforms.

    Args:
        train: Loader of training batches ``(x, y)``.
        valid: Loader of validation batches, or None.
        batch_tfms: Callables applied in order to ``x`` on the model's device to make
            model inputs (e.g. ``[Normalize()]``): for evaluation, and for training unless
            ``train_tfms`` is given.
        train_tfms: The whole pipeline for training batches (augmentation included; it
            replaces ``batch_tfms`` in training, so it can fuse normalisation into its
            last pass). Test-time augmentation uses it too.
        vocab: Class names in index order.
        cbs: Callbacks the data needs in training (e.g. dynamic class balancing); each
            Learner built on these loaders adds its own copy (``learn.dynamic_balance``).
        class_weights: Optional per-class loss weights ``(C,)`` (inverse frequency).
        name: The data's name (e.g. ``'PAD-UFES-20'``), kept in exported model files.
        modality: ``'clinical'`` or ``'dermoscopic'`` where known (see
            :mod:`dermlearn.data.domain`), kept in exported model files.
        balance: How the training loader balances classes (``DermData.dls(balance=...)``),
            for the run's record; None when not said.
    """

    def __init__(
        self,
        train: Iterable,
        valid: Iterable | None = None,
        batch_tfms: Sequence[BatchTfm] | None = None,
        train_tfms: Sequence[BatchTfm] | None = None,
        vocab: Sequence[str] | None = None,
        cbs: Sequence | None = None,
        class_weights: Tensor | None = None,
        name: str | None = None,
        modality: str | None = None,
        balance: str | None = None,
    ) -> None:
        if not hasattr(train, "__len__"):
            raise TypeError(f"the training loader must have a length, got {type(train).__name__}")
        self.train, self.valid = train, valid
        self.batch_tfms = list(batch_tfms or [])
        self.train_tfms = list(train_tfms or [])
        self.vocab = list(vocab) if vocab is not None else None
        self.cbs = list(cbs or [])
        self.class_weights = class_weights
        self.name, self.modality, self.balance = name, modality, balance

    def __getitem__(self, i: int) -> Iterable | None:
        return (self.train, self.valid)[i]

    @property
    def c(self) -> int | None:
        """Number of classes (from ``vocab``), or None."""
        return None if self.vocab is None else len(self.vocab)

    def to(self, device: torch.device) -> DataLoaders:
        """Move module transforms (and their buffers) to ``device``; returns self."""
        for t in self.batch_tfms + self.train_tfms:
            if isinstance(t, nn.Module):
                t.to(device)
        return self

    def decode_batch(self, x: Tensor) -> Tensor:
        """Undo a ``Normalize`` in ``batch_tfms``: float images in [0, 1]."""
        for t in reversed(self.batch_tfms):
            if hasattr(t, "decode"):
                x = t.decode(x)
        return x.float() / 255.0 if x.dtype == torch.uint8 else x

    def apply(self, x: Tensor, training: bool) -> Tensor:
        """Model inputs from a raw batch: ``train_tfms`` when ``training`` and given, else
        ``batch_tfms``."""
        for t in self.train_tfms if (training and self.train_tfms) else self.batch_tfms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        n_v = len(self.valid) if self.valid is not None else 0
        return f"DataLoaders(train={len(self.train)} batches, valid={n_v} batches, vocab={self.vocab})"
