"""``explain``: Grad-CAM and Guided Backprop maps of a learner's model for raw items, for the
predicted class, the runner-up or given classes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .attribution import Attribution
from .gradcam import GradCAM
from .guided_backprop import GuidedBackprop
from .targets import Target

__all__ = ["Explanation", "explain"]


@dataclass
class Explanation:
    """Maps of one batch for several targets.

    Attributes:
        images: The items as float images in [0, 1], ``(B, C, H, W)`` (for display).
        probs: Probabilities ``(B, n_classes)``.
        gradcam: Target name -> Grad-CAM :class:`Attribution` (maps ``(B, H, W)``).
        gbp: Target name -> Guided Backprop :class:`Attribution` (maps ``(B, C, H, W)``).
    """

    images: Tensor
    probs: Tensor
    gradcam: dict[str, Attribution]
    gbp: dict[str, Attribution]


def _name(t: Target) -> str:
    if isinstance(t, str):
        return t
    if isinstance(t, int):
        return f"class_{t}"
    return getattr(t, "__name__", "target")


def explain(learn, items: Tensor, targets: Sequence[Target] = ("top1", "runner_up"), layer=None, gbp: bool = True) -> Explanation:
    """Grad-CAM (and Guided Backprop) of ``learn.model`` for ``items``.

    Args:
        learn: A :class:`~dermlearn.learner.Learner`.
        items: Items as the dataset stores them: one ``(C, H, W)`` or a batch ``(B, C, H, W)``
            (uint8 or float); the data's batch transforms (normalisation) are applied.
        targets: What to explain (``'top1'``, ``'runner_up'``, class indices, callables).
        layer: Grad-CAM layer (default per architecture).
        gbp: Also compute Guided Backprop.

    Returns:
        An :class:`Explanation` keyed by target name (``'top1'``, ``'runner_up'``,
        ``'class_3'``...).
    """
    if items.ndim == 3:
        items = items[None]
    if items.ndim != 4:
        raise ValueError(f"explain expects items (C, H, W) or (B, C, H, W), got shape {tuple(items.shape)}")
    x = learn.dls.apply(items.to(learn.device), training=False)
    act = learn.activation
    cam = GradCAM(learn.model, layer, act=act)
    guided = GuidedBackprop(learn.model, act=act) if gbp else None
    cams, gbps = {}, {}
    for t in targets:
        cams[_name(t)] = cam(x, t)
        if guided is not None:
            gbps[_name(t)] = guided(x, t)
    first = next(iter(cams.values()))
    with torch.no_grad():
        images = learn.dls.decode_batch(x).cpu()
    return Explanation(images, first.probs.cpu(), cams, gbps)
