"""Batch inference over image files: :func:`predict_files` (``learn.predict_files``).

Files are decoded as the data pipeline decodes them (:func:`dermlearn.data.decode.image_item`:
upright, shorter side to the model's input size, centre square; JPEGs decoded at a reduced
scale where that is enough) by DataLoader worker processes, collated into uint8 batches,
and predicted through :meth:`~dermlearn.Learner.get_preds`, so the model's preprocessing
(corrections, normalisation) and the Learner's callbacks (mixed precision, channels-last)
apply on the model's device. An unreadable file is reported, not fatal; with
``check_domain=True`` the workers also check each image against a loaded model file's
training domain (:func:`~dermlearn.inference.predict.out_of_domain`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from dermlearn.data.decode import UnreadableImage, image_item

from .predict import domain_reasons, input_size

__all__ = ["FilePredictions", "predict_files"]


class _Files(Dataset):
    """``(uint8 (3, S, S), index, note)`` per file: ``note`` is the list of the image's
    out-of-domain reasons (checked against ``domain`` when one is given); an unreadable file
    gives an empty image, index ``-1 - i`` and its reason as ``note``."""

    def __init__(self, files: Sequence[str | os.PathLike], size: int, domain=None) -> None:
        self.files, self.size, self.domain = [os.fspath(f) for f in files], size, domain

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Tensor, int, str | list[str]]:
        try:
            item = image_item(self.files[i], self.size)
        except UnreadableImage as e:
            return torch.zeros(3, self.size, self.size, dtype=torch.uint8), -1 - i, e.reason
        return item, i, domain_reasons(self.domain, item, self.files[i]) if self.domain is not None else []


def _collate(batch: list[tuple[Tensor, int, str | list[str]]]) -> tuple[Tensor, Tensor, list[tuple[int, str]], list[tuple[int, list[str]]]]:
    ok = [(x, i) for x, i, _ in batch if i >= 0]
    bad = [(-1 - i, why) for _, i, why in batch if i < 0]
    odd = [(i, why) for _, i, why in batch if i >= 0 and why]
    if not ok:
        return torch.empty(0, 3, 1, 1, dtype=torch.uint8), torch.empty(0, dtype=torch.long), bad, odd
    return torch.stack([x for x, _ in ok]), torch.tensor([i for _, i in ok]), bad, odd


class _Batches:
    """Yields unlabelled batches ``(x,)`` for ``get_preds`` (no loss is computed), and keeps
    the files' indices in the order predicted, the unreadable files and the out-of-domain
    ones."""

    def __init__(self, loader: DataLoader, bar=None) -> None:
        self.loader, self.bar, self.errors, self.odd, self.indices = loader, bar, [], [], []

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for x, idx, bad, odd in self.loader:
            self.errors += bad
            self.odd += odd
            if self.bar is not None:
                self.bar.update(len(idx) + len(bad))
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
        out_of_domain: ``{file: [reasons]}`` for the files that look unlike the model's
            training images (filled only with ``check_domain=True``).
    """

    files: list[str]
    probs: Tensor
    errors: dict[str, str] = field(default_factory=dict)
    out_of_domain: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> Tensor:
        """Bool ``(N,)``: the files that were predicted."""
        return ~torch.isnan(self.probs).any(dim=1)


def predict_files(learn, files: Sequence[str | os.PathLike], bs: int = 64, num_workers: int | None = None,
                  size: int | None = None, check_domain: bool = False, progress: bool = False) -> FilePredictions:  # fmt: skip
    """Predict image files in batches.

    Args:
        learn: The Learner (e.g. from :func:`dermlearn.load_learner`).
        files: Image files.
        bs: Batch size.
        num_workers: Decoding processes (default: the CPUs this process may use, at most 8;
            0 decodes in this process).
        size: Decoded side (default: the model's input size).
        check_domain: Also check each image against a loaded model file's training domain
            (in the workers; :attr:`FilePredictions.out_of_domain`).
        progress: Show a progress bar over the files.

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
    domain = learn.input_domain if check_domain else None
    loader = DataLoader(_Files(files, size, domain), batch_size=bs, num_workers=num_workers, collate_fn=_collate,
                        pin_memory=torch.cuda.is_available() and learn.device.type == "cuda",
                        persistent_workers=False, prefetch_factor=4 if num_workers else None)  # fmt: skip
    from tqdm.auto import tqdm

    bar = tqdm(total=len(files), desc=f"predicting {len(files)} files", unit="img", leave=False) if progress else None
    batches = _Batches(loader, bar)
    n = len(files)
    c = len(learn.dls.vocab) if learn.dls.vocab is not None else None
    try:
        probs = learn.get_preds(dl=batches)[0]
    except ValueError:
        if batches.indices:  # batches came: the error is not "every file was unreadable"
            raise
        probs = None
    finally:
        if bar is not None:
            bar.close()
    if c is None:
        c = probs.shape[1] if probs is not None and probs.ndim == 2 else 0
    out = torch.full((n, c), float("nan"))
    if batches.indices:
        out[torch.cat(batches.indices)] = probs.float()
    names = [os.fspath(f) for f in files]
    return FilePredictions(names, out, {names[i]: why for i, why in batches.errors}, {names[i]: why for i, why in batches.odd})
