"""Batched augmentation on the model's device, and the resize used for evaluation.

:class:`BatchAugment` turns a uint8 batch ``(B, 3, P, P)`` (the presized cache) into float
images ``(B, 3, S, S)`` in [0, 1] with, per sample:

* a horizontal and a vertical flip (each with probability 1/2; skin lesions have no
  canonical orientation),
* a rotation in ``[-max_rotate, max_rotate]`` degrees,
* a zoom in ``[1, max_zoom]`` with a random crop position (the crop stays inside),
* a perspective warp of magnitude up to ``max_warp``,

composed into one projective matrix per sample and applied with a single
``grid_sample`` for the whole batch (reflection padding), then

* lighting: brightness shift, contrast and saturation factors up to ``max_lighting``.

Parameters are drawn on the CPU from a ``torch.Generator`` seeded with ``seed`` and only
then moved to the device, so the same seed gives the same batches on any device.
:meth:`BatchAugment.sample` returns the parameters and :meth:`BatchAugment.apply` replays
them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["AugmentParams", "BatchAugment", "Resize"]


def _to_float(x: Tensor) -> Tensor:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images (B, 3, H, W), got shape {tuple(x.shape)}")
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


class Resize(nn.Module):
    """uint8 or float ``(B, 3, H, W)`` -> float ``(B, 3, size, size)`` in [0, 1]
    (bilinear with antialiasing; identity when the size already matches)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: Tensor) -> Tensor:
        x = _to_float(x)
        if x.shape[-2:] == (self.size, self.size):
            return x
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)

    def extra_repr(self) -> str:
        return f"size={self.size}"


@dataclass
class AugmentParams:
    """Per-sample parameters of one batch (all tensors of length B, on the CPU).

    Attributes:
        matrix: ``(B, 3, 3)`` projective maps from output to input coordinates in [-1, 1].
        brightness: Added to every pixel (in [0, 1] units).
        contrast: Factor around each image's mean.
        saturation: Factor around each pixel's gray value.
    """

    matrix: Tensor
    brightness: Tensor
    contrast: Tensor
    saturation: Tensor


class BatchAugment(nn.Module):
    """Random flips, rotation, zoom/crop, perspective and lighting for a batch.

    Args:
        size: Output side ``S``.
        flip: Horizontal flips.
        flip_vert: Vertical flips.
        max_rotate: Maximum rotation in degrees.
        max_zoom: Maximum zoom (>= 1).
        max_warp: Maximum perspective warp (0 to 0.5).
        max_lighting: Maximum brightness shift, and contrast/saturation change (0 to 0.9).
        p_affine: Probability that a sample gets rotation/zoom/warp.
        p_lighting: Probability that a sample gets the lighting change.
        seed: Seed of the parameter generator.
    """

    def __init__(
        self,
        size: int,
        flip: bool = True,
        flip_vert: bool = True,
        max_rotate: float = 30.0,
        max_zoom: float = 1.3,
        max_warp: float = 0.2,
        max_lighting: float = 0.2,
        p_affine: float = 0.75,
        p_lighting: float = 0.75,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if max_zoom < 1.0:
            raise ValueError(f"max_zoom must be >= 1, got {max_zoom}")
        if not 0.0 <= max_warp <= 0.5:
            raise ValueError(f"max_warp must be in [0, 0.5], got {max_warp}")
        if not 0.0 <= max_lighting < 1.0:
            raise ValueError(f"max_lighting must be in [0, 1), got {max_lighting}")
        self.size, self.flip, self.flip_vert = size, flip, flip_vert
        self.max_rotate, self.max_zoom, self.max_warp, self.max_lighting = max_rotate, max_zoom, max_warp, max_lighting
        self.p_affine, self.p_lighting = p_affine, p_lighting
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, b: int) -> AugmentParams:
        """Draw parameters for ``b`` samples."""
        g = self.generator

        def u(lo: float, hi: float) -> Tensor:
            return lo + (hi - lo) * torch.rand(b, generator=g, dtype=torch.float64)

        def coin(p: float) -> Tensor:
            return torch.rand(b, generator=g, dtype=torch.float64) < p

        fx = torch.where(coin(0.5) & self.flip, -1.0, 1.0).double()
        fy = torch.where(coin(0.5) & self.flip_vert, -1.0, 1.0).double()
        aff = coin(self.p_affine)
        theta = torch.where(aff, u(-self.max_rotate, self.max_rotate), 0.0) * math.pi / 180
        zoom = torch.where(aff, u(1.0, self.max_zoom), 1.0)
        s = 1.0 / zoom  # the crop covers s of the image side
        tx = (1 - s) * u(-1.0, 1.0)
        ty = (1 - s) * u(-1.0, 1.0)
        px = torch.where(aff, u(-self.max_warp, self.max_warp), 0.0) * 0.5
        py = torch.where(aff, u(-self.max_warp, self.max_warp), 0.0) * 0.5
        cos, sin = torch.cos(theta), torch.sin(theta)
        m = torch.zeros(b, 3, 3, dtype=torch.float64)
        # output (x, y) -> input: flip, then scale and rotate, then translate
        m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = s * cos * fx, -s * sin * fy, tx
        m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = s * sin * fx, s * cos * fy, ty
        m[:, 2, 0], m[:, 2, 1], m[:, 2, 2] = px, py, 1.0
        light = coin(self.p_lighting)
        lv = self.max_lighting
        brightness = torch.where(light, u(-lv / 2, lv / 2), 0.0)
        contrast = torch.where(light, torch.exp(u(math.log(1 - lv), -math.log(1 - lv))), 1.0)
        saturation = torch.where(light, torch.exp(u(math.log(1 - lv), -math.log(1 - lv))), 1.0)
        return AugmentParams(m.float(), brightness.float(), contrast.float(), saturation.float())

    def apply(self, x: Tensor, p: AugmentParams) -> Tensor:
        """Apply given parameters to ``x`` (uint8 or float ``(B, 3, H, W)``): float
        ``(B, 3, S, S)`` in [0, 1]."""
        x = _to_float(x)
        b, dev = x.shape[0], x.device
        lin = (torch.arange(self.size, device=dev, dtype=torch.float32) * 2 + 1) / self.size - 1
        yy, xx = torch.meshgrid(lin, lin, indexing="ij")
        base = torch.stack([xx, yy, torch.ones_like(xx)], -1).view(1, -1, 3)  # (1, S*S, 3)
        pts = base @ p.matrix.to(dev).transpose(1, 2)  # (B, S*S, 3)
        grid = (pts[..., :2] / pts[..., 2:].clamp(min=1e-3)).view(b, self.size, self.size, 2)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        br = p.brightness.to(dev).view(b, 1, 1, 1)
        ct = p.contrast.to(dev).view(b, 1, 1, 1)
        st = p.saturation.to(dev).view(b, 1, 1, 1)
        gray = (0.299 * out[:, 0:1] + 0.587 * out[:, 1:2] + 0.114 * out[:, 2:3])
        out = gray + (out - gray) * st
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = (out - mean) * ct + mean + br
        return out.clamp_(0, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.apply(x, self.sample(x.shape[0]))

    def reset(self, seed: int | None = None) -> None:
        """Restart the parameter stream (from ``seed``, default the constructor's)."""
        self.generator.manual_seed(self.seed if seed is None else seed)

    def extra_repr(self) -> str:
        return (f"size={self.size}, flip={self.flip}, flip_vert={self.flip_vert}, max_rotate={self.max_rotate}, "
                f"max_zoom={self.max_zoom}, max_warp={self.max_warp}, max_lighting={self.max_lighting}")  # fmt: skip
