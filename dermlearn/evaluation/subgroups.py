"""Who the model fails: accuracy and balanced accuracy per subgroup of the evaluated images
(Fitzpatrick skin type, body region, ...), each with a bootstrap interval, and groups too
small to read marked as such."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .bootstrap import bootstrap_ci
from .metrics import accuracy, balanced_accuracy

__all__ = ["MIN_READABLE", "subgroup_metrics"]

MIN_READABLE = 20
"""Images a subgroup needs before its scores are read: below it, one image moves accuracy by
more than 5 points and a bootstrap interval spans most of [0, 1]."""


def _label(v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip()):
        return "unknown"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def subgroup_metrics(probs: Tensor, targets: Tensor, subgroups: Sequence[Any], units: Sequence[Any] | None = None,
                     n_boot: int = 1000, min_n: int = MIN_READABLE, seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """Scores of every subgroup, one row each (in the order of their labels).

    Args:
        probs: Probabilities ``(N, C)`` of the evaluated images.
        targets: Class indices ``(N,)``.
        subgroups: One value per image, e.g. its Fitzpatrick type or body region; missing
            values (None, NaN, empty) form the group ``'unknown'``.
        units: One value per image whose images are resampled together (e.g. the patient:
            several photos of one patient are not independent); None: single images.
        n_boot: Bootstrap resamples of each interval (BCa, 95 %); 0: none.
        min_n: Groups with fewer images are marked ``readable = False`` and get no interval.
        seed: Seed of the resampling.

    Returns:
        Rows in the order of the labels (numbers as numbers, ``'unknown'`` last); columns ``group``, ``n`` (images), ``units`` (distinct units), ``classes`` (the
        classes present), ``accuracy``, ``accuracy low`` / ``high``, ``balanced accuracy``
        (mean recall over the classes present in the group) and its bounds, ``readable``.
    """
    probs, targets = torch.as_tensor(probs), torch.as_tensor(targets)
    if probs.ndim != 2 or targets.shape != probs.shape[:1]:
        raise ValueError(f"probs must be (N, C) and targets (N,), got {tuple(probs.shape)} and {tuple(targets.shape)}")
    labels = [_label(v) for v in subgroups]
    if len(labels) != len(targets):
        raise ValueError(f"subgroups has {len(labels)} values for {len(targets)} images")
    if units is not None and len(units) != len(targets):
        raise ValueError(f"units has {len(units)} values for {len(targets)} images")
    rows = []
    for group in sorted(set(labels), key=lambda g: (g == "unknown", not g.isdigit(), int(g) if g.isdigit() else 0, g)):
        idx = torch.tensor([i for i, g in enumerate(labels) if g == group])
        p, t = probs[idx], targets[idx]
        u = [units[i] for i in idx.tolist()] if units is not None else None
        readable = len(idx) >= min_n
        row: dict[str, Any] = {"group": group, "n": len(idx), "units": len(set(u)) if u is not None else len(idx),
                               "classes": int(torch.unique(t).numel())}  # fmt: skip
        for name, metric in (("accuracy", accuracy), ("balanced accuracy", balanced_accuracy)):
            if readable and n_boot:
                v, lo, hi = bootstrap_ci(metric, p, t, n=n_boot, groups=u, seed=seed)
            else:
                v, lo, hi = float(metric(p, t)), float("nan"), float("nan")
            row |= {name: v, f"{name} low": lo, f"{name} high": hi}
        rows.append(row | {"readable": readable})
    return pd.DataFrame(rows)
