"""Colour constancy: Shades of Gray (Finlayson & Trezzi 2004).

The illuminant colour is estimated per channel as the Minkowski p-mean of the pixel values,
``e_c = mean(x_c ** p) ** (1 / p)``, over pixels that are neither saturated nor in the
image border, and each channel is scaled by ``mean(e) / e_c``: a colour cast is removed and
a neutral image is unchanged. ``p = 6`` is the default (as the ISIC 2019 winner);
``p = 1`` is Gray World; large ``p`` approaches max-RGB (White Patch).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import check_images, like_input, to_unit
from .step import RandomStep, Step

__all__ = ["RandomColourCast", "ShadesOfGray", "estimate_illuminant", "shades_of_gray"]


def estimate_illuminant(x: Tensor, p: float = 6.0, saturated: float = 0.98, border: float = 0.05) -> Tensor:
    """Illuminant colour of each image, ``(B, 3)``.

    Args:
        x: Images ``(B, 3, H, W)``, uint8 or float in [0, 1].
        p: Minkowski norm (>= 1).
        saturated: Pixels with any channel at or above this are excluded (clipped highlights).
        border: Fraction of the width/height excluded at each edge (vignettes, frames).

    Returns:
        float64 ``(B, 3)``; NaN for an image with no pixel left to estimate from (all
        saturated, or black: a blown-out or empty photo), which :func:`shades_of_gray`
        leaves unchanged.
    """
    check_images(x, "estimate_illuminant")
    if p < 1:
        raise ValueError(f"p must be >= 1, got {p}")
    v = to_unit(x).float()
    b, _, h, w = v.shape
    valid = v.amax(dim=1) < saturated  # (B, H, W)
    bh, bw = int(border * h), int(border * w)
    if bh or bw:
        edge = torch.ones(h, w, dtype=torch.bool, device=v.device)
        edge[bh : h - bh, bw : w - bw] = False
        valid &= ~edge
    n = valid.sum(dim=(1, 2))
    wts = valid[:, None].float()
    return ((v**p * wts).sum(dim=(2, 3), dtype=torch.float64) / n[:, None]) ** (1.0 / p)  # 0 / 0: NaN where n == 0


def shades_of_gray(x: Tensor, p: float = 6.0, saturated: float = 0.98, border: float = 0.05) -> Tensor:
    """Remove the colour cast: channel ``c`` times ``mean(e) / e_c`` (see
    :func:`estimate_illuminant`). Same shape and dtype as ``x``, clamped to [0, 1]. An
    image with nothing to estimate from (all pixels saturated, or all black) is returned
    unchanged."""
    e = estimate_illuminant(x, p, saturated, border)
    gain = (e.mean(dim=1, keepdim=True) / e.clamp(min=1e-8)).float()
    gain = torch.where(torch.isfinite(gain) & (e.amax(dim=1, keepdim=True) > 0), gain, torch.ones_like(gain))
    return like_input((to_unit(x).float() * gain[:, :, None, None]).clamp(0, 1), x)


class ShadesOfGray(Step):
    """Deterministic colour constancy (see :func:`shades_of_gray`)."""

    export_args = ("p", "saturated", "border")
    graph_exporters = ("dynamo",)
    cli_name = "colour"

    def __init__(self, p: float = 6.0, saturated: float = 0.98, border: float = 0.05) -> None:
        super().__init__()
        self.p, self.saturated, self.border = p, saturated, border

    def forward(self, x: Tensor) -> Tensor:
        return shades_of_gray(x, self.p, self.saturated, self.border)


class RandomColourCast(RandomStep):
    """Multiply each channel by a random factor in ``cast_range`` with probability ``p``:
    augmentation, and how the experiments degrade images."""

    def __init__(self, cast_range: tuple[float, float] = (0.8, 1.2), p: float = 0.5, seed: int = 0) -> None:
        super().__init__(seed)
        self.cast_range, self.p = cast_range, p

    def sample(self, b: int) -> Tensor:
        lo, hi = self.cast_range
        c = lo + (hi - lo) * torch.rand(b, 3, generator=self.generator)
        on = torch.rand(b, generator=self.generator) < self.p
        return torch.where(on[:, None], c, torch.ones_like(c))

    def apply_params(self, x: Tensor, casts: Tensor) -> Tensor:
        """Apply casts sampled by :meth:`sample` to ``x`` (replays them exactly)."""
        check_images(x, "RandomColourCast")
        return like_input((to_unit(x).float() * casts.to(x.device)[:, :, None, None]).clamp(0, 1), x)


