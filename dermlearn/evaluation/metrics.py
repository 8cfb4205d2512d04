"""Classification metrics on whole-epoch predictions.

A metric is a callable ``metric(preds, targets) -> Tensor`` (0-d for a scalar metric, or
1-d for per-class values) evaluated once per validation pass on the concatenated
predictions, on the device where they were computed (no per-batch host sync).

``preds`` are logits or probabilities of shape ``(N, C)`` (only their argmax/top-k is
used); ``targets`` are class indices ``(N,)`` or one-hot rows ``(N, C)``.
Every metric is in [0, 1].

Metrics of the scores themselves (ROC AUC, calibration error) are marked with
:func:`on_probabilities`: a :class:`~dermlearn.Learner` passes them the loss's activation of
the logits (softmax for cross-entropy, sigmoid for :class:`~dermlearn.BCEWithLogitsOneHot`),
the probabilities ``learn.get_preds()`` returns, instead of the logits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "TopK",
    "accuracy",
    "balanced_accuracy",
    "calibration_bins",
    "confusion_matrix",
    "expected_calibration_error",
    "macro_f1",
    "metric_name",
    "on_probabilities",
    "per_class_auc",
    "per_class_recall",
    "roc_auc",
    "roc_curve",
    "takes_probabilities",
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


def on_probabilities(metric: Callable) -> Callable:
    """Mark ``metric`` as one that needs probabilities: the Learner calls it with the loss's
    activation of the logits. Returns the metric itself."""
    metric.on_probabilities = True
    return metric


def takes_probabilities(metric: Callable) -> bool:
    """Whether ``metric`` was marked with :func:`on_probabilities`."""
    return bool(getattr(metric, "on_probabilities", False))


def _check_scores(probs: Tensor, targets: Tensor) -> Tensor:
    if probs.ndim != 2:
        raise ValueError(f"probs must be (N, C), got shape {tuple(probs.shape)}")
    t = _targets(targets).long()
    if t.shape != probs.shape[:1]:
        raise ValueError(f"targets must be (N,) or (N, C) for {probs.shape[0]} items, got shape {tuple(targets.shape)}")
    if len(t) and (int(t.min()) < 0 or int(t.max()) >= probs.shape[1]):
        raise ValueError(f"targets must be class indices in [0, {probs.shape[1] - 1}], got {int(t.min())}..{int(t.max())}")
    return t


def _auc(scores: Tensor, positive: Tensor) -> Tensor:
    """P(score of a positive > score of a negative) + P(tie) / 2, from mid-ranks (float64)."""
    n_pos = positive.sum().double()
    n_neg = len(positive) - n_pos
    _, inverse, counts = torch.unique(scores.double(), return_inverse=True, return_counts=True)
    last = counts.cumsum(0).double()  # 1-based rank of the last item of each distinct value
    mid_rank = (last - (counts.double() - 1) / 2)[inverse]
    u = mid_rank[positive].sum() - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


@on_probabilities
def per_class_auc(probs: Tensor, targets: Tensor) -> Tensor:
    """One-vs-rest ROC AUC of each class, shape ``(C,)`` (float64).

    The AUC of class ``c`` is the probability that a random item of ``c`` scores higher in
    column ``c`` than a random item of another class, ties counting one half (the area
    under the ROC curve drawn through tied scores as one step). NaN for a class with no
    items, or whose items are all there is.

    Args:
        probs: Probabilities or any scores ``(N, C)``; only their order within a column
            matters, so sigmoid outputs and their logits give the same AUC.
        targets: Class indices ``(N,)`` or one-hot rows ``(N, C)``.
    """
    t = _check_scores(probs, targets)
    out = torch.full((probs.shape[1],), float("nan"), dtype=torch.float64, device=probs.device)
    for c in range(probs.shape[1]):
        positive = t == c
        n_pos = int(positive.sum())
        if 0 < n_pos < len(t):
            out[c] = _auc(probs[:, c], positive)
    return out


@on_probabilities
def roc_auc(probs: Tensor, targets: Tensor) -> Tensor:
    """Macro one-vs-rest ROC AUC: the mean of :func:`per_class_auc` over the classes that
    have items and are not all the items (NaN when there is none). 0.5 is chance, 1.0 a
    perfect ranking of every class against the rest."""
    a = per_class_auc(probs, targets)
    return a[~torch.isnan(a)].mean().float()


def roc_curve(scores: Tensor, positive: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """ROC curve of one class against the rest.

    Args:
        scores: Score of the class for each item ``(N,)``; higher means more likely.
        positive: Whether each item belongs to the class ``(N,)`` (bool or 0/1).

    Returns:
        ``(fpr, tpr, thresholds)``, each ``(K + 1,)`` for ``K`` distinct scores, float64, on
        the CPU: the point ``i`` counts items with ``score >= thresholds[i]`` as positive.
        The curve starts at ``(0, 0)`` (threshold ``+inf``) and ends at ``(1, 1)``; its
        trapezoidal area equals :func:`per_class_auc`.
    """
    scores, positive = scores.detach().double().cpu().flatten(), positive.detach().cpu().flatten().bool()
    if scores.shape != positive.shape:
        raise ValueError(f"scores and positive differ in shape: {tuple(scores.shape)} and {tuple(positive.shape)}")
    n_pos = int(positive.sum())
    if n_pos == 0 or n_pos == len(positive):
        raise ValueError(f"a ROC curve needs positive and negative items; got {n_pos} positive of {len(positive)}")
    values, inverse = torch.unique(scores, return_inverse=True)  # ascending
    pos_per_value = torch.bincount(inverse, weights=positive.double(), minlength=len(values)).flip(0)
    all_per_value = torch.bincount(inverse, minlength=len(values)).double().flip(0)
    tp = torch.cat([torch.zeros(1, dtype=torch.float64), pos_per_value.cumsum(0)])
    fp = torch.cat([torch.zeros(1, dtype=torch.float64), (all_per_value - pos_per_value).cumsum(0)])
    thresholds = torch.cat([torch.tensor([float("inf")], dtype=torch.float64), values.flip(0)])
    return fp / (len(positive) - n_pos), tp / n_pos, thresholds


def calibration_bins(probs: Tensor, targets: Tensor, n_bins: int = 15) -> dict[str, Tensor]:
    """Reliability of the top-label confidence, in ``n_bins`` equal-width bins of (0, 1].

    Bin ``k`` holds the items whose confidence (their highest probability) lies in
    ``(k / n_bins, (k + 1) / n_bins]``.

    Args:
        probs: Probabilities ``(N, C)``, in [0, 1].
        targets: Class indices ``(N,)`` or one-hot rows ``(N, C)``.
        n_bins: Number of bins, >= 1.

    Returns:
        ``{'count', 'confidence', 'accuracy'}``, each ``(n_bins,)`` float64: the items per bin,
        their mean confidence and the fraction of them whose top class is right (both NaN
        for an empty bin).
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    t = _check_scores(probs, targets)
    if len(t) and (float(probs.min()) < 0 or float(probs.max()) > 1):
        raise ValueError(f"probs must be probabilities in [0, 1], got values in [{float(probs.min()):.3g}, {float(probs.max()):.3g}]: pass the activation of the logits")  # fmt: skip
    conf, pred = probs.double().max(dim=1)
    k = (conf * n_bins).ceil().long().sub(1).clamp(0, n_bins - 1)
    count = torch.bincount(k, minlength=n_bins).double()
    conf_sum = torch.bincount(k, weights=conf, minlength=n_bins)
    right = torch.bincount(k, weights=(pred == t).double(), minlength=n_bins)
    return {"count": count, "confidence": conf_sum / count, "accuracy": right / count}


@on_probabilities
def expected_calibration_error(probs: Tensor, targets: Tensor, n_bins: int = 15) -> Tensor:
    """Expected calibration error of the top-label confidence (Guo et al., 2017):
    ``sum_k n_k / N * |accuracy_k - confidence_k|`` over the bins of
    :func:`calibration_bins`. 0 for perfectly calibrated confidences; lower is better."""
    b = calibration_bins(probs, targets, n_bins)
    filled = b["count"] > 0
    gap = (b["accuracy"] - b["confidence"]).abs()[filled]
    return (b["count"][filled] / b["count"].sum() * gap).sum().float()


def metric_name(metric) -> str:
    """Display name of a metric: its ``__name__`` or class name."""
    return getattr(metric, "__name__", type(metric).__name__)
