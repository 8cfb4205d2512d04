"""A loader over tensors already in memory (or on the GPU): batches are gathered with one
``index_select`` per tensor, without per-item Python work or worker processes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dermlearn.distributed import rank, world_size

__all__ = ["CachedItems", "TensorLoader"]


class CachedItems:
    """Indexable view of cached images and labels (what ``loader.dataset`` returns).

    ``items[i]`` is ``(image uint8 (3, P, P), label)``; ``meta`` holds one dict per item.

    Args:
        images: uint8 ``(M, 3, P, P)``: the items' images, or with ``rows`` a store the items
            are rows of (e.g. a whole dataset's memory-mapped decode cache, shared by its
            splits and by every process that maps the same file).
        labels: int64 ``(N,)``.
        meta: One dict per item.
        paths: One file path per item.
        rows: int ``(N,)``: item ``i`` is ``images[rows[i]]`` (None: ``M == N``, item ``i`` is
            ``images[i]``). Batches then gather from the store without a copy of the split.
    """

    def __init__(self, images: Tensor, labels: Tensor, meta: Sequence[dict[str, Any]] | None = None, paths: Sequence[str] | None = None,
                 rows: Tensor | np.ndarray | None = None) -> None:  # fmt: skip
        self.store, self.labels = images, labels
        self.rows = None if rows is None else torch.as_tensor(rows, dtype=torch.int64)
        if self.rows is not None and len(self.rows) != len(labels):
            raise ValueError(f"rows has {len(self.rows)} entries for {len(labels)} labels")
        if self.rows is None and len(images) != len(labels):
            raise ValueError(f"{len(images)} images for {len(labels)} labels")
        self.meta = list(meta) if meta is not None else [{} for _ in range(len(labels))]
        self.paths = list(paths) if paths is not None else None

    @property
    def images(self) -> Tensor:
        """The items' images, uint8 ``(N, 3, P, P)`` (a copy gathered from the store when the
        items are rows of it: for inspection, not for a loop over a large dataset)."""
        return self.store if self.rows is None else self.store.index_select(0, self.rows.to(self.store.device))

    def store_rows(self, idx: Tensor) -> Tensor:
        """The rows of the store that hold items ``idx`` (int64 ``(B,)`` on the CPU), on the
        store's device."""
        rows = idx if self.rows is None else self.rows.index_select(0, idx)
        return rows.to(self.store.device)

    def gather(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """The images and labels of items ``idx`` (int64 ``(B,)`` on the CPU): ``(B, 3, P, P)``, ``(B,)``."""
        return self.store.index_select(0, self.store_rows(idx)), self.labels.index_select(0, idx.to(self.labels.device))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.store[i if self.rows is None else int(self.rows[i])], self.labels[i]


class TensorLoader:
    """Batches of ``(images[idx], labels[idx])``.

    Args:
        items: The cached items.
        bs: Batch size.
        shuffle: Shuffle each epoch (seeded by ``seed`` and the epoch number).
        drop_last: Drop the last incomplete batch.
        sampler: Instead of the items in order, the indices it draws each epoch
            (``indices()``; ``set_epoch`` is called before each epoch).
        index: A fixed index list (e.g. static oversampling) to iterate instead of ``range(N)``.
        seed: Base seed for shuffling.
        pin_memory: Pin batches for faster host-to-GPU copies (only when images are on the CPU).
    """

    def __init__(self, items: CachedItems, bs: int = 64, shuffle: bool = False, drop_last: bool = False, sampler=None,
                 index: Sequence[int] | None = None, seed: int = 0, pin_memory: bool = False) -> None:  # fmt: skip
        if bs < 1:
            raise ValueError(f"batch size must be >= 1, got {bs}")
        self.dataset, self.bs, self.shuffle, self.drop_last = items, bs, shuffle, drop_last
        self.sampler, self.seed, self.pin_memory = sampler, seed, pin_memory
        self.index = np.asarray(index if index is not None else np.arange(len(items)), dtype=np.int64)
        self.epoch = 0

    def _order(self) -> np.ndarray:
        if self.sampler is not None:  # samplers shard by rank themselves
            self.sampler.set_epoch(self.epoch)
            return np.asarray(self.sampler.indices(), dtype=np.int64)
        if self.shuffle:
            rng = np.random.default_rng(self.seed * 1_000_003 + self.epoch)
            return self._shard(self.index[rng.permutation(len(self.index))])
        return self._shard(self.index)

    def _shard(self, order: np.ndarray) -> np.ndarray:
        """This rank's part in a distributed run: for shuffled (training) loaders an equal
        share of a permutation every rank computes alike (the same number of batches on every
        rank, so gradient all-reduces pair up); otherwise a contiguous block, so that
        gathering in rank order restores the item order."""
        world, r = world_size(), rank()
        if world == 1:
            return order
        if self.shuffle:
            n = len(order) // world
            return order[r * n : (r + 1) * n]
        block = -(-len(order) // world)
        return order[r * block : (r + 1) * block]

    def _n(self) -> int:
        return len(self.sampler) if self.sampler is not None else len(self._shard(self.index))

    def __len__(self) -> int:
        n = self._n()
        return n // self.bs if self.drop_last else -(-n // self.bs)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = torch.from_numpy(self._order())
        self.epoch += 1
        # the epoch's store rows and labels, moved to their devices once (not once a batch)
        items = self.dataset
        rows, labels = items.store_rows(order), items.labels.index_select(0, order.to(items.labels.device))
        for k in range(len(self)):
            batch = slice(k * self.bs, (k + 1) * self.bs)
            x, y = items.store.index_select(0, rows[batch]), labels[batch]
            if self.pin_memory and x.device.type == "cpu":
                x, y = x.pin_memory(), y.pin_memory()
            yield x, y

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = state["epoch"]
