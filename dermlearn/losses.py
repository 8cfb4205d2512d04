"""Loss functions that know how to turn model outputs into probabilities and labels.

Every loss here takes logits of shape ``(N, C)`` and integer class targets of shape ``(N,)``
(or one-hot / soft targets of shape ``(N, C)`` for :class:`BCEWithLogitsOneHot`) and has:

* ``reduction``: ``'mean'``, ``'sum'`` or ``'none'`` (one loss per item, shape ``(N,)``);
* ``activation_name``: how logits become what the model reports, a key of
  :data:`ACTIVATIONS`;
* ``activation(logits)``: probabilities, shape ``(N, C)``;
* ``decodes(probs)``: predicted class indices, shape ``(N,)``.

What a model reports: a single-label model (each image has one class) reports class
probabilities that sum to 1 over the classes. With cross-entropy they are the softmax of the
logits. With the study's BCE loss each class has its own sigmoid score, and those scores sum
to anything between 0 and C (about 2 was seen on PAD-UFES-20); read as probabilities they
mislead, so a single-label BCE model reports them normalised to sum 1
(``'normalized_sigmoid'``). The raw sigmoid scores are what a multi-label model (several
classes per image) reports: ``BCEWithLogitsOneHot(multi_label=True)``, or on request from a
single-label model with ``learn.get_preds(act=torch.sigmoid)``. The predicted class (the
argmax) is the same either way.

Plain torch losses work in a Learner too (softmax and argmax are then assumed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "BCEWithLogitsOneHot", "CrossEntropy", "activation_name", "activation_of", "decodes_of",
           "normalized_sigmoid"]  # fmt: skip


def normalized_sigmoid(logits: Tensor) -> Tensor:
    """Per-class sigmoid scores ``(N, C)`` divided by their sum over the classes: class
    probabilities (rows sum to 1) from a model trained with per-class sigmoids."""
    scores = torch.sigmoid(logits)
    return scores / scores.sum(dim=-1, keepdim=True)


# name -> logits (N, C) -> what the model reports (N, C); the names go into model files
ACTIVATIONS = {
    "softmax": lambda logits: logits.softmax(dim=-1),
    "sigmoid": torch.sigmoid,
    "normalized_sigmoid": normalized_sigmoid,
}


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


class CrossEntropy(nn.Module):
    """Softmax cross-entropy on integer targets, with optional label smoothing and class weights.

    Args:
        label_smoothing: In [0, 1); the target distribution is
            ``(1 - eps) * one_hot + eps / C``.
        weight: Optional per-class weights, shape ``(C,)`` (loss weighting for imbalance).
        reduction: ``'mean'`` (weighted mean, as torch), ``'sum'`` or ``'none'``.
    """

    def __init__(self, label_smoothing: float = 0.0, weight: Tensor | None = None, reduction: str = "mean") -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing
        self.reduction = reduction
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(
            logits, target, weight=self.weight, label_smoothing=self.label_smoothing, reduction=self.reduction
        )

    activation_name = "softmax"

    def activation(self, logits: Tensor) -> Tensor:
        return ACTIVATIONS[self.activation_name](logits)

    def decodes(self, probs: Tensor) -> Tensor:
        return probs.argmax(dim=-1)


class BCEWithLogitsOneHot(nn.Module):
    """The study's loss: binary cross-entropy with logits on one-hot targets.

    Integer targets ``(N,)`` are one-hot encoded to ``(N, C)``; float targets ``(N, C)``
    (multi-label or soft) are used as given. The per-item loss is the mean over classes.
    Predictions decode as ``argmax(sigmoid(logits))``.

    Args:
        weight: Optional per-class weights ``(C,)`` applied to each class's term.
        reduction: ``'mean'``, ``'sum'`` (over items) or ``'none'`` (``(N,)``).
        multi_label: False (single-label, the study's use): :meth:`activation` reports class
            probabilities, the sigmoid scores normalised to sum 1 over the classes. True
            (an image may have several classes): the raw per-class sigmoid scores.
    """

    def __init__(self, weight: Tensor | None = None, reduction: str = "mean", multi_label: bool = False) -> None:
        super().__init__()
        self.reduction = reduction
        self.multi_label = multi_label
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if target.ndim == 1:
            if target.dtype.is_floating_point:
                raise TypeError("BCEWithLogitsOneHot: 1-D targets must be integer class indices")
            target = F.one_hot(target, logits.shape[-1]).to(logits.dtype)
        elif target.shape != logits.shape:
            raise ValueError(f"target shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}")
        per_class = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), weight=self.weight, reduction="none")
        return _reduce(per_class.mean(dim=-1), self.reduction)

    @property
    def activation_name(self) -> str:
        return "sigmoid" if self.multi_label else "normalized_sigmoid"

    def activation(self, logits: Tensor) -> Tensor:
        """Class probabilities (rows sum to 1), or the raw sigmoid scores with ``multi_label``."""
        return ACTIVATIONS[self.activation_name](logits)

    def decodes(self, probs: Tensor) -> Tensor:
        return probs.argmax(dim=-1)


def activation_name(loss_func) -> str:
    """The key of :data:`ACTIVATIONS` that ``loss_func`` reports with (softmax for plain
    torch losses)."""
    return getattr(loss_func, "activation_name", "softmax")


def activation_of(loss_func) -> callable:
    """The loss's ``activation`` or softmax for plain torch losses."""
    return getattr(loss_func, "activation", ACTIVATIONS["softmax"])


def decodes_of(loss_func) -> callable:
    """The loss's ``decodes`` or argmax for plain torch losses."""
    return getattr(loss_func, "decodes", lambda x: x.argmax(dim=-1))
