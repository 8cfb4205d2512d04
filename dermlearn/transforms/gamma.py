"""Gamma correction: ``out = in ** gamma`` on values in [0, 1].

Convention: **gamma < 1 brightens** (lifts shadows), gamma > 1 darkens; gamma = 1 is an
exact identity. Photo editors (and the study's "gamma 1.2-1.5 to lift shadows") usually
quote the *display* gamma ``g`` with ``out = in ** (1 / g)``: the study's 1.2-1.5 is
``gamma = 1/1.2 .. 1/1.5`` (0.83 .. 0.67) here. uint8 images go through a per-sample lookup
table computed in float64 and rounded to the nearest value (never truncated).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ._common import check_images, luminance, per_sample, to_unit, tracing
from .step import RandomStep, Step

__all__ = ["AdjustGamma", "AutoGamma", "RandomGamma", "adjust_gamma", "auto_gamma"]


def adjust_gamma(x: Tensor, gamma: float | Tensor) -> Tensor:
    """``x ** gamma`` per pixel and channel.

    Args:
        x: Images ``(B, 3, H, W)``, uint8 or float in [0, 1].
        gamma: A positive scalar, or one value per image ``(B,)``.

    Returns:
        Same shape and dtype as ``x``.
    """
    check_images(x, "adjust_gamma")
    g = per_sample(gamma, x.shape[0], x.device, torch.float64)
    if not tracing() and (g <= 0).any():
        raise ValueError(f"gamma must be > 0, got {gamma}")
    if x.dtype == torch.uint8:
        levels = torch.arange(256, dtype=torch.float64, device=x.device) / 255.0
        lut = (levels.view(1, 256) ** g.view(-1, 1) * 255.0).round_().to(torch.uint8)  # (B, 256)
        return torch.gather(lut, 1, x.reshape(x.shape[0], -1).long()).view_as(x)
    return x.clamp(min=0) ** g.to(x.dtype)


def auto_gamma(x: Tensor, target: float = 0.5, mask: Tensor | None = None, iters: int = 20, work_size: int = 96) -> Tensor:
    """Per-image gamma bringing the mean luminance of the skin to ``target``.

    Args:
        x: Images ``(B, 3, H, W)``, uint8 or float in [0, 1].
        target: Wanted mean luminance in (0, 1).
        mask: Optional ``(B, H, W)`` bool, True on the lesion (excluded from the mean).
        iters: Bisection steps on ``log(gamma)`` in [-3, 3] (20 gives ~1e-5 precision).
        work_size: The mean is taken on the luminance area-downsampled so that its shorter
            side is at most this (the mask is downsampled alike, as a skin fraction).

    Returns:
        gamma ``(B,)``: ``mean(luminance(x) ** gamma) == target`` over the skin pixels.
    """
    check_images(x, "auto_gamma")
    if not 0.0 < target < 1.0:
        raise ValueError(f"target must be in (0, 1), got {target}")
    y = luminance(to_unit(x).float())  # (B, 1, H, W)
    w = torch.ones_like(y) if mask is None else (~mask.to(torch.bool)).to(y.dtype)[:, None]
    h, wd = y.shape[-2:]
    if min(h, wd) > work_size:
        size = (max(1, round(h * work_size / min(h, wd))), max(1, round(wd * work_size / min(h, wd))))
        yw = torch.nn.functional.interpolate(y * w, size=size, mode="area")
        w = torch.nn.functional.interpolate(w, size=size, mode="area")
        y = yw / w.clamp(min=1e-6)  # skin-only average within each cell
    y, w = y[:, 0].double().clamp(1e-6, 1.0), w[:, 0].double()
    if not tracing() and (w.sum(dim=(1, 2)) == 0).any():
        raise ValueError("auto_gamma: the mask covers the whole image; no skin pixels left")
    lo = torch.full((x.shape[0],), -3.0, dtype=torch.float64, device=x.device)
    hi = torch.full_like(lo, 3.0)
    for _ in range(iters):  # mean(y ** g) decreases as g grows
        mid = (lo + hi) / 2
        m = (y ** mid.exp().view(-1, 1, 1) * w).sum(dim=(1, 2)) / w.sum(dim=(1, 2))
        lo, hi = torch.where(m > target, mid, lo), torch.where(m > target, hi, mid)
    return ((lo + hi) / 2).exp().float()


class AdjustGamma(Step):
    """Deterministic gamma correction (see :func:`adjust_gamma`)."""

    export_args = ("gamma",)
    graph_exporters = ("dynamo",)

    def __init__(self, gamma: float) -> None:
        super().__init__()
        self.gamma = gamma

    def forward(self, x: Tensor) -> Tensor:
        return adjust_gamma(x, self.gamma)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}"


class AutoGamma(Step):
    """Gamma that brings each image's mean luminance to ``target`` (see :func:`auto_gamma`)."""

    export_args = ("target",)
    graph_exporters = ("dynamo",)
    cli_name = "gamma"

    def __init__(self, target: float = 0.5) -> None:
        super().__init__()
        self.target = target

    def forward(self, x: Tensor) -> Tensor:
        return adjust_gamma(x, auto_gamma(x, self.target))


class RandomGamma(RandomStep):
    """Random gamma per image, log-uniform in ``gamma_range``, with probability ``p``
    (augmentation; also how the experiments degrade images).

    ``sample(b)`` returns the gammas (1 where not applied); ``apply(x, gammas)`` replays them.
    """

    def __init__(self, gamma_range: Sequence[float] = (0.6, 1.6), p: float = 0.5, seed: int = 0) -> None:
        super().__init__(seed)
        lo, hi = gamma_range
        if not 0 < lo <= hi:
            raise ValueError(f"gamma_range must satisfy 0 < low <= high, got {gamma_range}")
        self.gamma_range, self.p = (float(lo), float(hi)), p

    def sample(self, b: int) -> Tensor:
        lo, hi = torch.log(torch.tensor(self.gamma_range, dtype=torch.float64))
        g = (lo + (hi - lo) * torch.rand(b, generator=self.generator, dtype=torch.float64)).exp()
        on = torch.rand(b, generator=self.generator) < self.p
        return torch.where(on, g, torch.ones_like(g)).float()

    def apply_params(self, x: Tensor, gammas: Tensor) -> Tensor:
        """Apply gammas ``(B,)`` sampled by :meth:`sample` to ``x`` (replays them exactly)."""
        return adjust_gamma(x, gammas.to(x.device))
