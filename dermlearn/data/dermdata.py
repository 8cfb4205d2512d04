"""``DermData``: labelled images with an honest split, decoded once into a presized cache,
served by fast in-memory loaders with batched augmentation on the device.

    data = DermData.pad_ufes_20()                 # grouped by patient, 5:1
    dls = data.dls(bs=32, size=128, balance="static")
    learn = Learner(dls, create_model("resnet34", data.c))

Labels use a vocabulary with a stable order (``classes=``, or sorted names). Splits: an
explicit ``valid`` column / index list, else grouped by ``group_col`` when given (PAD-UFES-20:
``patient_id``), else stratified; ``valid_pct`` 1/6 (5:1) and seeded by default. ``test_pct``
holds out a test set the same way first (a three-way split: train / valid / test).
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from dermlearn.distributed import rank, world_size
from dermlearn.transforms.augment import BatchAugment
from dermlearn.transforms.normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize
from dermlearn.transforms.resize import Resize

from .cache import decode_all, default_cache_dir
from .dataloaders import DataLoaders
from .domain import MODALITIES
from .loader import CachedItems, TensorLoader
from .sampling import (
    ClassWeightedSampler,
    DynamicBalance,
    inverse_frequency_weights,
    oversample_indices,
)
from .sources import csv_table, data_root, folder_table, unpack
from .splits import grouped_split, stratified_split

__all__ = ["DermData"]

BALANCE = ("none", "static", "resample", "dynamic", "loss")


class DermData:
    """Labelled images and their split.

    Args:
        items: Table with ``path`` and ``label`` columns; other columns are metadata kept
            beside each item (``split`` with values train/valid/test is an explicit split).
        classes: The vocabulary in index order (default: sorted labels). A label not in it
            is an error naming the row.
        group_col: Metadata column of groups (patient, lesion) for a grouped split.
        valid: Explicit validation set: a boolean metadata column name, or item indices.
        valid_pct: Validation share for random splits (default 1/6: the study's 5:1).
        test_pct: Test share for random splits, held out (grouped or stratified, as the
            validation set) before the validation set is drawn from the rest; ``valid_pct``
            stays a share of all items. 0 (default): no test set.
        seed: Seed of the split (and default seed of loaders).
        name: A name for messages (kept in exported model files).
        modality: ``'clinical'`` (photos of the skin), ``'dermoscopic'`` or None (not
            known); exported models warn about inputs of the other modality
            (:mod:`dermlearn.data.domain`). PAD-UFES-20 is clinical, DermaMNIST dermoscopic.
    """

    def __init__(
        self,
        items: pd.DataFrame,
        classes: Sequence[str] | None = None,
        group_col: str | None = None,
        valid: str | Sequence[int] | None = None,
        valid_pct: float = 1 / 6,
        seed: int = 0,
        name: str = "data",
        modality: str | None = None,
        test_pct: float = 0.0,
    ) -> None:
        if modality not in (None, *MODALITIES):
            raise ValueError(f"{name}: modality must be None or one of {MODALITIES}, got {modality!r}")
        self.modality = modality
        if len(items) == 0:
            raise ValueError(f"{name}: no items")
        for col in ("path", "label"):
            if col not in items.columns:
                raise ValueError(f"{name}: the item table needs a {col!r} column; it has {list(items.columns)}")
        items = items.reset_index(drop=True)
        labels = items["label"].astype(str)
        self.classes = list(classes) if classes is not None else sorted(labels.unique())
        lookup = {c: i for i, c in enumerate(self.classes)}
        unknown = ~labels.isin(lookup)
        if unknown.any():
            i = int(np.flatnonzero(unknown.to_numpy())[0])
            where = f"row {items['_row'].iloc[i]}" if "_row" in items.columns else f"item {i}"
            raise ValueError(f"{name}: {where} ({items['path'].iloc[i]}) has label {labels.iloc[i]!r}, not one of the classes {self.classes}")
        self.items = items
        self.y = labels.map(lookup).to_numpy(dtype=np.int64)
        self.name, self.seed, self.group_col = name, seed, group_col
        self.split = self._split(valid, valid_pct, test_pct, seed, group_col)
        self._cache: dict[int, tuple[Tensor, list]] = {}
        self.dropped: list[str] = []

    # ------------------------------------------------------------------ split
    def _split(self, valid, valid_pct, test_pct, seed, group_col) -> np.ndarray:
        n = len(self.items)
        split = np.array(["train"] * n, dtype=object)
        explicit = valid is not None or "split" in self.items.columns
        if test_pct and (explicit or not 0.0 < test_pct < 1.0 or valid_pct + test_pct >= 1.0):
            why = ("it applies to random splits only, and this data has an explicit split (a 'split' column or valid=)" if explicit
                   else f"it must be in (0, 1) with valid_pct + test_pct < 1 (valid_pct is {valid_pct})")  # fmt: skip
            raise ValueError(f"{self.name}: test_pct={test_pct}: {why}")
        if valid is None and "split" in self.items.columns:
            vals = self.items["split"].astype(str).str.lower().replace({"val": "valid", "validation": "valid"})
            bad = sorted(set(vals) - {"train", "valid", "test"})
            if bad:
                raise ValueError(f"{self.name}: the split column has values {bad}; expected train, valid or test")
            return vals.to_numpy(dtype=object)
        if isinstance(valid, str):
            if valid not in self.items.columns:
                raise ValueError(f"{self.name}: no column {valid!r} for the validation set; columns are {list(self.items.columns)}")
            mask = self.items[valid].astype(str).str.lower().isin(["true", "1", "valid", "yes"]).to_numpy()
            split[mask] = "valid"
        elif valid is not None:
            idx = np.asarray(valid, dtype=np.int64)
            if len(idx) and (idx.min() < 0 or idx.max() >= n):
                raise ValueError(f"{self.name}: validation indices must be in [0, {n}), got {idx.min()}..{idx.max()}")
            split[idx] = "valid"
        else:
            if group_col is not None and group_col not in self.items.columns:
                raise ValueError(f"{self.name}: no group column {group_col!r}; columns are {list(self.items.columns)}")
            groups = self.items[group_col].to_numpy() if group_col is not None else None

            def held_out(rows: np.ndarray, pct: float) -> np.ndarray:
                if groups is None:
                    return rows[stratified_split(self.y[rows], pct, seed)[1]]
                return rows[grouped_split(self.y[rows], groups[rows], pct, seed)[1]]

            rest = np.arange(n)
            if test_pct:
                test = held_out(rest, test_pct)
                split[test] = "test"
                rest = np.setdiff1d(rest, test)
            split[held_out(rest, valid_pct / (1.0 - test_pct))] = "valid"
        if not (split == "valid").any():
            raise ValueError(f"{self.name}: the validation set is empty")
        if test_pct and not (split == "test").any():
            raise ValueError(f"{self.name}: the test set is empty (test_pct={test_pct})")
        return split

    def indices(self, which: str) -> np.ndarray:
        """Item indices of ``'train'``, ``'valid'`` or ``'test'`` (without dropped files)."""
        return np.flatnonzero((self.split == which) & ~self.items["path"].isin(self.dropped).to_numpy())

    def subset(self, n_train: int, n_held_out: int | None = None) -> DermData:
        """The same data with only ``n_train`` of its training items and, with
        ``n_held_out``, at most that many validation and test items each (by default all
        held-out items are kept); the split is unchanged: for smoke runs of experiments. The
        items are drawn at random (seeded by the data's ``seed``), one of each class first,
        so that every class of a split keeps an item when the count is at least ``c``: the
        first items of a folder table are all of one class."""
        if n_train < 1:
            raise ValueError(f"n_train must be >= 1, got {n_train}")
        if n_held_out is not None and n_held_out < 1:
            raise ValueError(f"n_held_out must be >= 1 or None, got {n_held_out}")
        rng = np.random.default_rng(self.seed)

        def draw(which: str, n: int | None) -> np.ndarray:
            idx = self.indices(which)
            if n is None or n >= len(idx):
                return idx
            order = idx[rng.permutation(len(idx))]
            _, first = np.unique(self.y[order], return_index=True)
            head = order[np.sort(first)]
            return np.concatenate([head, order[~np.isin(order, head)]])[:n]

        keep = np.sort(np.concatenate([draw("train", n_train), draw("valid", n_held_out), draw("test", n_held_out)]))
        items = self.items.assign(split=self.split).iloc[keep].reset_index(drop=True)
        return DermData(items, self.classes, self.group_col, name=f"{self.name} ({n_train} training items)",
                        seed=self.seed, modality=self.modality)  # fmt: skip

    def groups(self, which: str) -> list | None:
        """Group values (``group_col``: patient, lesion) of the items of ``which``, in the
        order of :meth:`indices`; None when the data has no group column."""
        if self.group_col is None:
            return None
        return self.items[self.group_col].to_numpy()[self.indices(which)].tolist()

    @property
    def c(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def counts(self) -> pd.DataFrame:
        """Items per class (rows) and split (columns)."""
        df = pd.DataFrame({"label": [self.classes[i] for i in self.y], "split": self.split})
        return pd.crosstab(df["label"], df["split"]).reindex(self.classes, fill_value=0)

    def __repr__(self) -> str:
        parts = ", ".join(f"{k} {int((self.split == k).sum())}" for k in ("train", "valid", "test") if (self.split == k).any())
        return f"DermData({self.name!r}: {len(self.items)} items, {self.c} classes {self.classes}; {parts})"

    # ------------------------------------------------------------------ sources
    @classmethod
    def from_folder(cls, path: str | os.PathLike, classes: Sequence[str] | None = None, valid_pct: float = 1 / 6, seed: int = 0,
                    modality: str | None = None, test_pct: float = 0.0) -> DermData:  # fmt: skip
        """``path/<class>/<image>``; stratified split (with ``test_pct``, three-way)."""
        return cls(folder_table(path), classes, valid_pct=valid_pct, seed=seed, name=str(path), modality=modality, test_pct=test_pct)

    @classmethod
    def from_csv(
        cls,
        csv: str | os.PathLike,
        image_col: str = "image",
        label_col: str | None = "label",
        label_cols: Sequence[str] | None = None,
        root: str | os.PathLike | None = None,
        suffix: str = "",
        classes: Sequence[str] | None = None,
        group_col: str | None = None,
        valid_col: str | None = None,
        valid_pct: float = 1 / 6,
        seed: int = 0,
        modality: str | None = None,
        test_pct: float = 0.0,
    ) -> DermData:
        """Items from a CSV (see :func:`~dermlearn.data.sources.csv_table`). With one column
        per class (``label_cols``) the classes default to those columns, in order.
        ``test_pct``: hold out a test set as well (see :class:`DermData`)."""
        table = csv_table(csv, image_col, label_col, label_cols, root, suffix)
        if classes is None and label_cols is not None:
            classes = list(label_cols)
        return cls(table, classes, group_col, valid_col, valid_pct, seed, name=str(csv), modality=modality, test_pct=test_pct)

    @classmethod
    def pad_ufes_20(cls, root: str | os.PathLike | None = None, originals: bool = False, valid_pct: float = 1 / 6, seed: int = 0,
                    test_pct: float = 0.0) -> DermData:  # fmt: skip
        """PAD-UFES-20 smartphone photos (``labels.csv``), grouped by ``patient_id`` (the
        test set too, with ``test_pct``: no patient on two sides); metadata ``patient_id``,
        ``lesion_id``, ``fitzpatrick``, ``region``, ``biopsed`` and the lesion ``mask`` path
        are kept. ``originals=True``: the full-resolution subset."""
        base = Path(root) if root is not None else data_root() / "pad-ufes-20"
        if originals:
            base = base / "originals"
        table = csv_table(base / "labels.csv", "image", "diagnostic", root=base)
        table["mask"] = [str((base / m).resolve()) for m in table["mask"]]
        return cls(table, group_col="patient_id", valid_pct=valid_pct, seed=seed, name="PAD-UFES-20" + (" originals" if originals else ""),
                   modality="clinical", test_pct=test_pct)  # fmt: skip

    @classmethod
    def dermamnist(cls, archive: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None) -> DermData:
        """DermaMNIST 28x28 (``dermamnist.tar.gz``) with its official train/valid/test split
        (``test`` items are served by :meth:`test_dl`)."""
        archive = Path(archive) if archive is not None else data_root() / "dermamnist.tar.gz"
        folder = unpack(archive, cache_dir) / "dermamnist"
        table = csv_table(folder / "labels.csv", "image", "label", root=folder)
        return cls(table, classes=["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"], name="DermaMNIST", modality="dermoscopic")

    @classmethod
    def cifar10(cls, archive: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None, test_as_valid: bool = True,
                valid_pct: float = 1 / 6, seed: int = 0) -> DermData:  # fmt: skip
        """CIFAR-10 image folders (``cifar10.tar.gz``). By default the official test set is
        the validation set; ``test_as_valid=False`` splits the training set 5:1 (the study's
        protocol) and keeps the test set for :meth:`test_dl`."""
        archive = Path(archive) if archive is not None else data_root() / "cifar10.tar.gz"
        folder = unpack(archive, cache_dir)
        train, test = folder_table(folder / "train"), folder_table(folder / "test")
        if test_as_valid:
            items = pd.concat([train.assign(split="train"), test.assign(split="valid")], ignore_index=True)
            return cls(items, name="CIFAR-10")
        _, v = stratified_split(pd.Categorical(train["label"]).codes, valid_pct, seed)
        train["split"] = "train"
        train.loc[v, "split"] = "valid"
        return cls(pd.concat([train, test.assign(split="test")], ignore_index=True), name="CIFAR-10")

    # ------------------------------------------------------------------ decoding
    def images(self, presize: int, cache_dir: str | os.PathLike | None | bool = True, skip_bad: bool = False, progress: bool = True,
               memory_map: bool = True) -> Tensor:  # fmt: skip
        """All images decoded and presized to ``presize``: uint8 ``(N, 3, P, P)``, decoded
        once per presize and cached on disk unless ``cache_dir=False``. The disk cache is
        memory-mapped (``memory_map=False``: read whole into memory): a dataset larger than
        the memory trains from disk, and processes on one machine share one copy. The first
        call for a presize decides; later calls return what it loaded.

        Raises:
            ValueError: unreadable files, all listed with their reasons (unless
                ``skip_bad``: then they are dropped with a warning listing them).
        """
        if presize not in self._cache:
            folder = None if cache_dir is False else (default_cache_dir() / "images" if cache_dir in (True, None) else Path(cache_dir))
            imgs, errors = decode_all(self.items["path"].tolist(), presize, folder, progress=progress, memory_map=memory_map)
            self._cache[presize] = (imgs, errors)
        imgs, errors = self._cache[presize]
        if errors:
            listing = "\n".join(f"  {e.path}: {e.reason}" for e in errors)
            if not skip_bad:
                raise ValueError(f"{self.name}: {len(errors)} unreadable image file(s):\n{listing}\n(to drop them with a warning: skip_bad=True in Python, --skip-bad on the command line)")
            new = [e.path for e in errors if e.path not in self.dropped]
            if new:
                warnings.warn(f"{self.name}: dropped {len(new)} unreadable image file(s):\n{listing}", stacklevel=2)
                self.dropped.extend(new)
        return imgs

    def _preprocessed(self, imgs: Tensor, presize: int, steps: list, progress: bool) -> Tensor:
        key = (presize, tuple(repr(s) for s in steps))
        cache = self.__dict__.setdefault("_pre_cache", {})
        if key not in cache:
            from tqdm.auto import tqdm

            out = torch.empty_like(imgs)
            for i in tqdm(range(0, len(imgs), 64), desc="preprocessing", disable=not progress, leave=False):
                x = imgs[i : i + 64]
                for s in steps:
                    x = s(x)
                if x.dtype != torch.uint8 or x.shape != imgs[i : i + 64].shape:
                    raise ValueError(f"preprocessing steps must map uint8 (B, 3, {presize}, {presize}) to the same; got {x.dtype} {tuple(x.shape)}")
                out[i : i + 64] = x
            cache[key] = out
        return cache[key]

    def with_images(self, presize: int, images: Tensor) -> DermData:
        """A copy of this data whose decoded cache at ``presize`` is ``images`` (uint8
        ``(N, 3, P, P)``, one per item, e.g. lesion crops made from the decoded cache)."""
        if images.dtype != torch.uint8 or images.shape != (len(self.items), 3, presize, presize):
            raise ValueError(f"images must be uint8 ({len(self.items)}, 3, {presize}, {presize}), got {images.dtype} {tuple(images.shape)}")
        other = copy.copy(self)
        other._cache = {presize: (images, [])}
        other.dropped = list(self.dropped)
        return other

    def _items(self, imgs: Tensor, idx: np.ndarray) -> CachedItems:
        meta_cols = [c for c in self.items.columns if c not in ("path", "label", "_row")]
        meta = self.items.iloc[idx][meta_cols].to_dict("records")
        # the split's items are rows of the decode cache: batches gather from it, no copy
        return CachedItems(imgs, torch.from_numpy(self.y[idx]), meta, self.items["path"].iloc[idx].tolist(), rows=torch.from_numpy(idx))

    # ------------------------------------------------------------------ loaders
    def class_weights(self, power: float = 1.0, beta: float | None = None) -> Tensor:
        """Loss weights from the training items' class counts, shape ``(C,)``: inverse
        frequency by default, its square root with ``power=0.5``, effective numbers with
        ``beta`` (see :func:`~dermlearn.inverse_frequency_weights`). For
        ``CrossEntropy(weight=...)``; ``dls(balance='loss')`` carries the default ones."""
        return inverse_frequency_weights(self.y[self.indices("train")], self.c, power=power, beta=beta)

    def dls(
        self,
        bs: int = 64,
        size: int = 224,
        presize: int | None = None,
        augment: bool | BatchAugment = True,
        balance: str = "none",
        seed: int | None = None,
        device: str | torch.device | None = None,
        cache_on_device: bool = False,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        skip_bad: bool = False,
        cache_dir: str | os.PathLike | None | bool = True,
        progress: bool = True,
        tfms: Sequence[torch.nn.Module] = (),
        preprocess: Sequence[torch.nn.Module] = (),
    ) -> DataLoaders:
        """Training and validation loaders.

        Args:
            bs: Batch size.
            size: Model input side ``S``.
            presize: Cached side ``P`` (default ``round(1.25 * size)``, at least ``size``).
            augment: True for :class:`BatchAugment` defaults, a configured
                :class:`BatchAugment`, or False.
            balance: ``'none'``; ``'static'`` (oversample to equal class counts once:
                a fixed index list, ``C * max(n_c)`` items per epoch); ``'resample'``
                (each epoch a fresh class-balanced draw, with replacement, of as many items
                as the training set has: epochs cost what unbalanced ones do);
                ``'dynamic'`` (per-epoch sampling weights from validation recall, by the
                :class:`DynamicBalance` in ``dls.cbs``, which the Learner adds; set
                ``dls.cbs = [DynamicBalance(source='train')]`` before building it to read
                the training batches' recall); ``'loss'`` (uniform sampling; use
                ``CrossEntropy(weight=dls.class_weights)``).
            seed: Shuffling/augmentation seed (default: the data's seed).
            device: Device of the cached images when ``cache_on_device``.
            cache_on_device: Keep the image cache on ``device`` (GPU) so batches never cross
                the bus.
            mean, std: Normalisation statistics.
            skip_bad: Drop unreadable files with a warning instead of failing.
            cache_dir: On-disk decode cache folder (True: default folder; False: none).
            progress: Show the decoding progress bar.
            tfms: Corrections applied on the device to every batch before augmentation
                (training) and before resizing (evaluation), e.g.
                ``[CorrectIllumination(), ShadesOfGray()]``; exported with the model so
                that ``predict`` applies them too.
            preprocess: Operations applied once to the decoded cache (in batches of 64, on
                the CPU), before any loader sees it: for slow, deterministic steps such as
                ``RemoveHair()``. The result is kept in memory for later calls with the same
                ``presize`` and steps. Unlike ``tfms`` they are not exported with the model.

        Returns:
            :class:`DataLoaders` with ``vocab``, ``cbs`` (callbacks the balancing needs) and
            ``class_weights``.
        """
        if balance not in BALANCE:
            raise ValueError(f"balance must be one of {BALANCE}, got {balance!r}")
        seed = self.seed if seed is None else seed
        presize = max(size, round(1.25 * size)) if presize is None else presize
        if presize < size:
            raise ValueError(f"presize ({presize}) must be at least size ({size})")
        imgs = self.images(presize, cache_dir, skip_bad, progress)
        if preprocess:
            imgs = self._preprocessed(imgs, presize, list(preprocess), progress)
        tr, va = self.indices("train"), self.indices("valid")
        for which, idx in (("training", tr), ("validation", va)):
            if len(idx) == 0:
                raise ValueError(f"{self.name}: the {which} set is empty")
        missing = [self.classes[c] for c in range(self.c) if not (self.y[tr] == c).any()]
        if missing:
            raise ValueError(f"{self.name}: no training images for class(es) {missing}")
        if cache_on_device:
            imgs = imgs.to(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
        train_items, valid_items = self._items(imgs, tr), self._items(imgs, va)
        pin = torch.cuda.is_available() and not cache_on_device
        cbs: list = []
        if balance == "static":
            train_dl = TensorLoader(train_items, bs, shuffle=True, drop_last=True, index=oversample_indices(train_items.labels.numpy(), seed), seed=seed, pin_memory=pin)
        elif balance in ("resample", "dynamic"):  # both start from class-uniform weights; dynamic then moves them
            sampler = ClassWeightedSampler(train_items.labels.numpy(), seed=seed, **_dist_rank())
            train_dl = TensorLoader(train_items, bs, drop_last=True, sampler=sampler, seed=seed, pin_memory=pin)
            if balance == "dynamic":
                cbs.append(DynamicBalance())
        else:
            train_dl = TensorLoader(train_items, bs, shuffle=True, drop_last=len(tr) > bs, seed=seed, pin_memory=pin)
        valid_dl = TensorLoader(valid_items, bs * 2, pin_memory=pin)
        if augment is True:
            augment = BatchAugment(size, seed=seed, mean=tuple(mean), std=tuple(std))
        elif augment and augment.mean is None:
            raise ValueError("pass a BatchAugment built with mean= and std= (it normalises in its last pass)")
        tfms = list(tfms)
        train_tfms = [*tfms, augment] if augment else None
        dls = DataLoaders(train_dl, valid_dl, batch_tfms=[*tfms, Resize(size), Normalize(mean, std)], train_tfms=train_tfms,
                          vocab=self.classes, cbs=cbs, class_weights=self.class_weights(), name=self.name,
                          modality=self.modality, balance=balance)  # fmt: skip
        return dls

    def test_dl(self, bs: int = 128, size: int = 224, presize: int | None = None) -> TensorLoader:
        """Loader of the ``test`` items (use with ``learn.get_preds(dl=...)``)."""
        te = self.indices("test")
        if len(te) == 0:
            raise ValueError(f"{self.name}: no test items")
        presize = max(size, round(1.25 * size)) if presize is None else presize
        return TensorLoader(self._items(self.images(presize), te), bs)

    def show_batch(self, n: int = 9, size: int = 128, augment: bool = True, ncols: int = 3, seed: int = 0):
        """A grid of ``n`` training images (augmented as in training) with their labels.
        Returns the matplotlib Figure."""
        import matplotlib.pyplot as plt

        dls = self.dls(bs=n, size=size, augment=augment, seed=seed, progress=False)
        x, y = next(iter(dls.train))
        imgs = dls.decode_batch(dls.apply(x, training=augment))
        nrows = -(-len(y) // ncols)
        fig, axs = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.8 * nrows), squeeze=False)
        for ax in axs.flat:
            ax.axis("off")
        for ax, img, label in zip(axs.flat, imgs, y.tolist()):
            ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
            ax.set_title(self.classes[label], fontsize=9)
        fig.tight_layout()
        return fig


def _dist_rank() -> dict[str, Any]:
    return {"rank": rank(), "world_size": world_size()}
