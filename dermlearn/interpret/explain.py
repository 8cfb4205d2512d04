"""``explain``: Grad-CAM and Guided Backprop maps of a learner's model for raw items, for the
predicted class, the runner-up or given classes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor

from dermlearn.data.decode import IMAGE_SOURCES

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


def explain(learn, items: Tensor | str | os.PathLike | Image.Image | Sequence[str | os.PathLike | Image.Image],
            targets: Sequence[Target] = ("top1", "runner_up"), layer=None, gbp: bool = True) -> Explanation:  # fmt: skip
    """Grad-CAM (and Guided Backprop) of ``learn.model`` for ``items``.

    Args:
        learn: A :class:`~dermlearn.Learner`.
        items: Items as the dataset stores them: one ``(C, H, W)`` or a batch ``(B, C, H, W)``
            (uint8 or float); or image files or PIL images (one or a list), decoded by
            ``learn.load_item``. The data's batch transforms (normalisation) are applied.
        targets: What to explain (``'top1'``, ``'runner_up'``, class indices, callables).
        layer: Grad-CAM layer (default per architecture).
        gbp: Also compute Guided Backprop.

    Returns:
        An :class:`Explanation` keyed by target name (``'top1'``, ``'runner_up'``,
        ``'class_3'``...).
    """
    if isinstance(items, IMAGE_SOURCES):
        items = learn.load_item(items)
    elif isinstance(items, (list, tuple)):
        if not items:
            raise ValueError("explain got an empty list of images")
        items = torch.stack([learn.load_item(i) if isinstance(i, IMAGE_SOURCES) else i for i in items])
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
