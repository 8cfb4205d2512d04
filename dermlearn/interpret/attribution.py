"""The result of an attribution, and map normalisation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Attribution", "checkerboard_share", "normalize_maps"]


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


def checkerboard_share(maps: Tensor) -> Tensor:
    """How much of each map is a pixel-scale checkerboard: the share of its spectral power
    (2-D FFT, mean removed) at the period-2 frequencies, the middle row and column of the
    spectrum (stripes and checks that alternate every pixel).

    White noise puts ``(H + W - 1) / (H * W)`` of its power there (0.016 at 128 px); a
    smooth map almost none. Input gradients of networks with stride-2 convolutions or
    pooling carry such a pattern (Odena et al., 2016), so Guided Backprop maps of ResNets
    and DenseNets do: see docs/interpretation.md.

    Args:
        maps: ``(B, H, W)``, or ``(B, C, H, W)`` summed over channels by absolute value.

    Returns:
        Shares in [0, 1], shape ``(B,)``.
    """
    m = maps.detach().double()
    m = m.abs().sum(1) if m.ndim == 4 else m
    if m.ndim != 3:
        raise ValueError(f"maps must be (B, H, W) or (B, C, H, W), got shape {tuple(maps.shape)}")
    m = m - m.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(m).abs() ** 2
    h, w = m.shape[-2:]
    period2 = torch.zeros(h, w, dtype=torch.bool, device=m.device)
    period2[h // 2, :] = True
    period2[:, w // 2] = True
    total = power.sum(dim=(-2, -1))
    return (power[:, period2].sum(-1) / torch.where(total > 0, total, torch.ones_like(total))).float()
