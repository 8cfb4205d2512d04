"""The result of an attribution, and map normalisation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Attribution", "normalize_maps"]


@dataclass
class Attribution:
    """Maps for a batch, with what they explain.

    Attributes:
        maps: Grad-CAM ``(B, H, W)`` (non-negative after ReLU, in the input's resolution) or
            Guided Backprop / Guided Grad-CAM ``(B, C, H, W)`` (signed input gradients).
            Raw: not normalised.
        classes: Class index explained for each item ``(B,)`` (None for a callable target).
        scores: The differentiated score of each item ``(B,)`` (a logit or a function of logits).
        probs: Model probabilities ``(B, C)`` (the activation given, softmax by default).
    """

    maps: Tensor
    classes: Tensor | None
    scores: Tensor
    probs: Tensor

    def normalized(self) -> Tensor:
        """Per-image normalisation to [0, 1] (see :func:`normalize_maps`)."""
        return normalize_maps(self.maps)[0]


def normalize_maps(*maps: Tensor, shared: bool = False) -> tuple[Tensor, ...]:
    """Scale maps to [0, 1] by their per-image maximum absolute value.

    Args:
        maps: Tensors of the same shape ``(B, ...)``.
        shared: Divide every map of an image by the largest value over all the given maps
            of that image (e.g. top-1 and runner-up maps on one scale), instead of each by
            its own maximum.

    Returns:
        The scaled maps, in order; an all-zero map stays zero.
    """
    if not maps:
        return ()
    b = maps[0].shape[0]
    peaks = [m.detach().abs().reshape(b, -1).amax(1) for m in maps]
    if shared:
        top = torch.stack(peaks).amax(0)
        peaks = [top] * len(maps)
    out = []
    for m, p in zip(maps, peaks):
        shape = (b,) + (1,) * (m.ndim - 1)
        out.append(m / torch.where(p > 0, p, torch.ones_like(p)).view(shape))
    return tuple(out)
