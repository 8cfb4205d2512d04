"""Batch inference over image files: :func:`predict_files` (``learn.predict_files``).

Files are decoded as the data pipeline decodes them (:func:`dermlearn.data.decode.image_item`:
upright, shorter side to the model's input size, centre square; JPEGs decoded at a reduced
scale where that is enough) by DataLoader worker processes, collated into uint8 batches,
and predicted through :meth:`~dermlearn.Learner.get_preds`, so the model's preprocessing
(corrections, normalisation) and the Learner's callbacks (mixed precision, channels-last)
apply on the model's device. An unreadable file is reported, not fatal.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from dermlearn.data.decode import UnreadableImage, image_item

from .predict import input_size

__all__ = ["FilePredictions", "predict_files"]


class _Files(Dataset):
    """``(uint8 (3, S, S), index)`` per file; an unreadable file gives an empty image and
    index ``-1 - i`` with its reason kept by the collate function."""

    def __init__(self, files: Sequence[str | os.PathLike], size: int) -> None:
        self.files, self.size = [os.fspath(f) for f in files], size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Tensor, int, str]:
        try:
            return image_item(self.files[i], self.size), i, ""
        except UnreadableImage as e:
            return torch.zeros(3, self.size, self.size, dtype=torch.uint8), -1 - i, e.reason


def _collate(batch: list[tuple[Tensor, int, str]]) -> tuple[Tensor, Tensor, list[tuple[int, str]]]:
    ok = [(x, i) for x, i, _ in batch if i >= 0]
    bad = [(-1 - i, why) for _, i, why in batch if i < 0]
    if not ok:
        return torch.empty(0, 3, 1, 1, dtype=torch.uint8), torch.empty(0, dtype=torch.long), bad
    return torch.stack([x for x, _ in ok]), torch.tensor([i for _, i in ok]), bad


class _Batches:
    """Yields unlabelled batches ``(x,)`` for ``get_preds`` (no loss is computed), and keeps
    the files' indices in the order predicted and the unreadable files."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader, self.errors, self.indices = loader, [], []

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for x, idx, bad in self.loader:
            self.errors += bad
            if len(idx):
                self.indices.append(idx)
                yield (x,)


@dataclass
class FilePredictions:
    """What :func:`predict_files` returns.

    Attributes:
        files: The files, as given.
        probs: ``(N, C)`` probabilities on the CPU, one row per file in order; NaN rows for the
            unreadable files.
        errors: ``{file: reason}`` for the files that could not be decoded.
    """

    files: list[str]
    probs: Tensor
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> Tensor:
        """Bool ``(N,)``: the files that were predicted."""
        return ~torch.isnan(self.probs).any(dim=1)


def predict_files(learn, files: Sequence[str | os.PathLike], bs: int = 64, num_workers: int | None = None,
                  size: int | None = None) -> FilePredictions:  # fmt: skip
    """Predict image files in batches.

    Args:
        learn: The Learner (e.g. from :func:`dermlearn.load_learner`).
        files: Image files.
        bs: Batch size.
        num_workers: Decoding processes (default: the CPUs this process may use, at most 8;
            0 decodes in this process).
        size: Decoded side (default: the model's input size).

    Returns:
        A :class:`FilePredictions`.

    Raises:
        ValueError: an empty list, or a Learner whose input size is unknown.
    """
    if not files:
        raise ValueError("predict_files got no files")
    size = size or input_size(learn)
    if size is None:
        raise ValueError("decoding files needs the model's input size: pass size=")
    if num_workers is None:
        num_workers = min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    num_workers = min(num_workers, max(0, (len(files) + bs - 1) // bs))
    loader = DataLoader(_Files(files, size), batch_size=bs, num_workers=num_workers, collate_fn=_collate,
                        pin_memory=torch.cuda.is_available() and learn.device.type == "cuda",
                        persistent_workers=False, prefetch_factor=4 if num_workers else None)  # fmt: skip
    batches = _Batches(loader)
    n = len(files)
    c = len(learn.dls.vocab) if learn.dls.vocab is not None else None
    try:
        probs = learn.get_preds(dl=batches)[0]
    except ValueError:
        if batches.indices:  # batches came: the error is not "every file was unreadable"
            raise
        probs = None
    if c is None:
        c = probs.shape[1] if probs is not None and probs.ndim == 2 else 0
    out = torch.full((n, c), float("nan"))
    if batches.indices:
        out[torch.cat(batches.indices)] = probs.float()
    names = [os.fspath(f) for f in files]
    return FilePredictions(names, out, {names[i]: why for i, why in batches.errors})
