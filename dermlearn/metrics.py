"""Classification metrics on whole-epoch predictions.

A metric is a callable ``metric(preds, targets) -> Tensor`` (0-d for a scalar metric, or
1-d for per-class values) evaluated once per validation pass on the concatenated
predictions, on the device where they were computed (no per-batch host sync).

``preds`` are logits or probabilities of shape ``(N, C)`` (only their argmax/top-k is
used); ``targets`` are class indices ``(N,)`` or one-hot rows ``(N, C)``.
Every metric is in [0, 1].
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "TopK",
    "accuracy",
    "balanced_accuracy",
    "confusion_matrix",
    "macro_f1",
    "metric_name",
    "per_class_recall",
    "top_k_accuracy",
]


def _targets(targets: Tensor) -> Tensor:
    return targets.argmax(dim=-1) if targets.ndim == 2 else targets


def confusion_matrix(preds: Tensor, targets: Tensor, n_classes: int | None = None) -> Tensor:
    """Counts, shape ``(C, C)``; rows are actual classes, columns predicted ones (int64)."""
    t = _targets(targets).long()
    p = preds.argmax(dim=-1) if preds.ndim == 2 else preds.long()
    c = n_classes if n_classes is not None else (preds.shape[-1] if preds.ndim == 2 else int(max(t.max(), p.max())) + 1)
    return torch.bincount(t * c + p, minlength=c * c).reshape(c, c)


def accuracy(preds: Tensor, targets: Tensor) -> Tensor:
    """Fraction of items whose argmax equals the target."""
    return (preds.argmax(dim=-1) == _targets(targets)).float().mean()


def per_class_recall(preds: Tensor, targets: Tensor) -> Tensor:
    """Recall of each class, shape ``(C,)``; NaN for a class with no items."""
    cm = confusion_matrix(preds, targets).double()
    return (cm.diagonal() / cm.sum(dim=1)).float()


def balanced_accuracy(preds: Tensor, targets: Tensor) -> Tensor:
    """Mean recall over the classes present in ``targets``."""
    r = per_class_recall(preds, targets)
    return r[~torch.isnan(r)].mean()


def macro_f1(preds: Tensor, targets: Tensor) -> Tensor:
    """Unweighted mean F1 over the classes present in targets or predictions."""
    cm = confusion_matrix(preds, targets).double()
    tp = cm.diagonal()
    support, predicted = cm.sum(dim=1), cm.sum(dim=0)
    present = (support + predicted) > 0
    f1 = 2 * tp / (support + predicted).clamp(min=1)
    return f1[present].mean().float()


def top_k_accuracy(preds: Tensor, targets: Tensor, k: int = 5) -> Tensor:
    """Fraction of items whose target is among the ``k`` highest scores."""
    k = min(k, preds.shape[-1])
    topk = preds.topk(k, dim=-1).indices
    return (topk == _targets(targets)[:, None]).any(dim=-1).float().mean()


class TopK:
    """``top_k_accuracy`` with a fixed ``k``, named ``top_{k}_accuracy``."""

    def __init__(self, k: int = 5) -> None:
        self.k = k
        self.__name__ = f"top_{k}_accuracy"

    def __call__(self, preds: Tensor, targets: Tensor) -> Tensor:
        return top_k_accuracy(preds, targets, self.k)




def metric_name(metric) -> str:
    """Display name of a metric: its ``__name__`` or class name."""
    return getattr(metric, "__name__", type(metric).__name__)
