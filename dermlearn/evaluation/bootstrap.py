"""Bootstrap confidence intervals for metrics of a set of predictions.

A validation or test set of a few hundred clinical photos gives a balanced accuracy or an
AUC that can move by several points with the draw of images; the interval says by how much.
The bootstrap resamples the items with replacement ``n`` times and recomputes the metric on
each resample. Photos of one patient or one lesion are not independent: pass ``groups`` (e.g.
``patient_id``) to resample whole groups (the cluster bootstrap), or the interval comes out
too narrow.

The interval is the bias-corrected and accelerated (BCa) one by default (Efron, 1987; what
``scipy.stats.bootstrap`` computes by default). The plain percentile interval (the
``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled values) is right for
a metric whose resampled values centre on its value, such as accuracy, but not for a biased
one: the expected calibration error of a resample is larger than the sample's (duplicated
images sharpen the bins' gaps), so its percentile interval sat above the estimate, e.g.
0.0575 in [0.0544, 0.1627]. BCa moves the quantiles by the share of resamples below the
value (the bias) and by the jackknife skewness (the acceleration); for an unbiased,
symmetric metric it gives the percentile interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from statistics import NormalDist
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
    method: str = "bca",
) -> tuple[float, float, float]:
    """Bootstrap interval of a scalar metric: BCa (default) or percentile.

    Args:
        metric: ``metric(probs, targets) -> 0-d Tensor`` (any metric of
            :mod:`dermlearn.evaluation.metrics`, e.g. ``dl.balanced_accuracy`` or ``dl.roc_auc``).
        probs: Probabilities ``(N, C)``.
        targets: Class indices ``(N,)`` or one-hot rows ``(N, C)``.
        n: Number of resamples, >= 10 (1000 is the usual choice; the bounds' own
            resampling error shrinks as ``1 / sqrt(n)``).
        level: Coverage of the interval, in (0, 1).
        groups: One group value per item (e.g. patient id): resample whole groups.
        seed: Seed of the resampling (the same seed gives the same interval).
        method: ``'bca'`` (bias-corrected and accelerated; its acceleration comes from a
            jackknife over the items, or over the groups: one more metric evaluation per
            item or group, or per block of them beyond 500, see below) or ``'percentile'``.

    Returns:
        ``(value, low, high)``: the metric on all items and the interval's bounds. Resamples
        on which the metric is undefined (NaN, e.g. an AUC with a single class drawn) are
        left out of the quantiles.

    Raises:
        ValueError: For ``n < 10``, a level outside (0, 1), a metric that is not scalar,
            ``groups`` of the wrong length, or an unknown ``method``.
    """
    if method not in ("bca", "percentile"):
        raise ValueError(f"method must be 'bca' or 'percentile', got {method!r}")
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
    quantiles = [(1 - level) / 2, (1 + level) / 2]
    if method == "bca":
        units = blocks if blocks is not None else [torch.tensor([i]) for i in range(len(probs))]
        if len(units) > _JACKKNIFE_BLOCKS:  # the delete-a-block jackknife: the same acceleration, 500 evaluations
            units = [torch.cat(units[k::_JACKKNIFE_BLOCKS]) for k in range(_JACKKNIFE_BLOCKS)]
        quantiles = _bca_quantiles(draws, float(value), _jackknife(metric, probs, targets, units), quantiles)
    low, high = np.quantile(draws, quantiles)
    return float(value), float(low), float(high)


# above this many items (or groups), BCa's jackknife leaves out blocks of them, every 500th
# unit together, instead of one at a time (a 2,005-image test set: 500 evaluations, not 2,005)
_JACKKNIFE_BLOCKS = 500


def _jackknife(metric: Callable[[Tensor, Tensor], Tensor], probs: Tensor, targets: Tensor, units: list[Tensor]) -> np.ndarray:
    """The metric with each unit (an item, or a group's items) left out in turn."""
    keep = torch.ones(len(probs), dtype=torch.bool)
    out = np.empty(len(units), dtype=np.float64)
    for k, unit in enumerate(units):
        keep[unit] = False
        idx = keep.nonzero().flatten().to(probs.device)
        out[k] = float(metric(probs[idx], targets[idx]))
        keep[unit] = True
    return out[~np.isnan(out)]


def _bca_quantiles(draws: np.ndarray, value: float, jack: np.ndarray, quantiles: list[float]) -> list[float]:
    """Efron's BCa levels: the percentile levels ``quantiles`` moved by the bias ``z0`` (the
    normal quantile of the share of draws below ``value``, ties counted half) and the
    acceleration ``a`` (the jackknife values' skewness / 6)."""
    normal = NormalDist()
    below = (np.sum(draws < value) + 0.5 * np.sum(draws == value)) / len(draws)
    below = min(max(below, 0.5 / len(draws)), 1 - 0.5 / len(draws))  # all draws on one side: a finite z0
    z0 = normal.inv_cdf(below)
    d = jack.mean() - jack if len(jack) > 1 else np.zeros(1)
    denom = 6.0 * float(np.sum(d**2)) ** 1.5
    a = float(np.sum(d**3)) / denom if denom > 0 else 0.0
    out = []
    for q in quantiles:
        z = normal.inv_cdf(q)
        out.append(normal.cdf(z0 + (z0 + z) / (1 - a * (z0 + z))))
    return out
