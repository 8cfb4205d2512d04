"""Bootstrap confidence intervals for metrics of a set of predictions.

A validation or test set of a few hundred clinical photos gives a balanced accuracy or an
AUC that can move by several points with the draw of images; the interval says by how much.
The percentile bootstrap resamples the items with replacement ``n`` times, recomputes the
metric on each resample and reports the ``(1 - level) / 2`` and ``(1 + level) / 2``
quantiles. Photos of one patient or one lesion are not independent: pass ``groups`` (e.g.
``patient_id``) to resample whole groups (the cluster bootstrap), or the interval comes out
too narrow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["bootstrap_ci"]


def _group_index(groups: Sequence[Any], n_items: int) -> list[Tensor]:
    if len(groups) != n_items:
        raise ValueError(f"groups has {len(groups)} values for {n_items} items")
    codes: dict[Any, list[int]] = {}
    for i, g in enumerate(groups):
        codes.setdefault(g, []).append(i)
    return [torch.tensor(v) for v in codes.values()]


def bootstrap_ci(
    metric: Callable[[Tensor, Tensor], Tensor],
    probs: Tensor,
    targets: Tensor,
    n: int = 1000,
    level: float = 0.95,
    groups: Sequence[Any] | None = None,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Percentile bootstrap interval of a scalar metric.

    Args:
        metric: ``metric(probs, targets) -> 0-d Tensor`` (any metric of
            :mod:`dermlearn.metrics`, e.g. ``dl.balanced_accuracy`` or ``dl.roc_auc``).
        probs: Probabilities ``(N, C)``.
        targets: Class indices ``(N,)`` or one-hot rows ``(N, C)``.
        n: Number of resamples, >= 10 (1000 is the usual choice; the bounds' own
            resampling error shrinks as ``1 / sqrt(n)``).
        level: Coverage of the interval, in (0, 1).
        groups: One group value per item (e.g. patient id): resample whole groups.
        seed: Seed of the resampling (the same seed gives the same interval).

    Returns:
        ``(value, low, high)``: the metric on all items and the interval's bounds. Resamples
        on which the metric is undefined (NaN, e.g. an AUC with a single class drawn) are
        left out of the quantiles.

    Raises:
        ValueError: For ``n < 10``, a level outside (0, 1), a metric that is not scalar, or
            ``groups`` of the wrong length.
    """
    if n < 10:
        raise ValueError(f"n must be >= 10 resamples, got {n}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if len(probs) != len(targets):
        raise ValueError(f"probs and targets differ in length: {len(probs)} and {len(targets)}")
    value = metric(probs, targets)
    if torch.as_tensor(value).numel() != 1:
        raise ValueError(f"bootstrap_ci needs a scalar metric; {getattr(metric, '__name__', metric)} returned shape {tuple(torch.as_tensor(value).shape)}")  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    blocks = _group_index(groups, len(probs)) if groups is not None else None
    draws = np.empty(n, dtype=np.float64)
    for r in range(n):
        if blocks is None:
            idx = torch.randint(0, len(probs), (len(probs),), generator=g)
        else:
            idx = torch.cat([blocks[int(j)] for j in torch.randint(0, len(blocks), (len(blocks),), generator=g)])
        idx = idx.to(probs.device)
        draws[r] = float(metric(probs[idx], targets[idx]))
    draws = draws[~np.isnan(draws)]
    if len(draws) == 0:
        return float(value), float("nan"), float("nan")
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(value), float(low), float(high)
