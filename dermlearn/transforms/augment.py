"""Batched augmentation on the model's device.

:class:`BatchAugment` turns a uint8 batch ``(B, 3, P, P)`` (the presized cache) into float
images ``(B, 3, S, S)`` in [0, 1] with, per sample:

* a horizontal and a vertical flip (each with probability 1/2; skin lesions have no
  canonical orientation),
* a rotation in ``[-max_rotate, max_rotate]`` degrees,
* a zoom in ``[1, max_zoom]`` with a random crop position (the crop stays inside),
* a perspective warp of magnitude up to ``max_warp``,

composed into one projective matrix per sample and applied as one bilinear warp with
reflection padding (on the GPU, and for float input, a single ``grid_sample`` for the whole
batch; for uint8 images on the CPU, OpenCV's ``warpPerspective`` on each 8-bit channel
plane: the same sampling points, faster on the CPU (``benchmarks/README.md``), its output
rounded to whole 8-bit levels, within 0.52 / 255 of ``grid_sample``), then

* lighting: brightness shift, contrast and saturation factors up to ``max_lighting``.

Parameters are drawn on the CPU from a ``torch.Generator`` seeded with ``seed`` and only
then moved to the device, so the same seed gives the same batches on any device.
:meth:`BatchAugment.sample` returns the parameters and :meth:`BatchAugment.apply` replays
them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .step import RandomStep

__all__ = ["AugmentParams", "BatchAugment"]


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


class BatchAugment(RandomStep):
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
        mean, std: When given, the output is normalised, ``(x - mean) / std``, in the same
            pass as the lighting change (the clamp to [0, 1] is applied before it).
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
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
    ) -> None:
        super().__init__(seed)
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        if max_zoom < 1.0:
            raise ValueError(f"max_zoom must be >= 1, got {max_zoom}")
        if not 0.0 <= max_warp <= 0.5:
            raise ValueError(f"max_warp must be in [0, 0.5], got {max_warp}")
        if not 0.0 <= max_lighting < 1.0:
            raise ValueError(f"max_lighting must be in [0, 1), got {max_lighting}")
        self.size, self.flip, self.flip_vert = size, flip, flip_vert
        self.max_rotate, self.max_zoom, self.max_warp, self.max_lighting = max_rotate, max_zoom, max_warp, max_lighting
        self.p_affine, self.p_lighting = p_affine, p_lighting
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32)
        self._buffers_cache: dict[tuple, Tensor] = {}

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

    def apply_params(self, x: Tensor, p: AugmentParams) -> Tensor:
        """Apply given parameters to ``x`` (uint8 or float ``(B, 3, H, W)``): float
        ``(B, 3, S, S)``, in [0, 1] or normalised when ``mean``/``std`` were given.

        Geometry: one bilinear warp per sample from the projective matrix, with the
        perspective divide: ``grid_sample`` for the batch, or for uint8 input on the CPU
        OpenCV's ``warpPerspective`` per channel plane (see the module docstring). Colour:
        saturation, contrast and brightness are linear per pixel, so with the /255 scaling
        they form one 3x3 matrix and bias per sample, applied with a single batched matmul;
        then the clamp (and normalisation) in one pass.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got shape {tuple(x.shape)}")
        scale = 1 / 255.0 if x.dtype == torch.uint8 else 1.0
        b, dev = x.shape[0], x.device
        if x.dtype == torch.uint8 and dev.type == "cpu":
            out = self._warp_planes(x, p.matrix)
        else:
            out = self._warp_grid_sample(x, p.matrix.to(dev))
        # colour: y = c * (S v) + (1 - c) * mean(S v) + brightness, with v in [0, 1]
        lum = torch.tensor([0.299, 0.587, 0.114], device=dev)
        sat = p.saturation.to(dev).view(b, 1, 1)
        con = p.contrast.to(dev).view(b, 1, 1)
        eye = torch.eye(3, device=dev).expand(b, 3, 3)
        smat = sat * eye + (1 - sat) * lum.view(1, 1, 3)  # every output channel mixes in the gray value
        chan_mean = out.mean(dim=(2, 3)) * scale  # (B, 3) channel means of v
        img_mean = (smat @ chan_mean.unsqueeze(-1)).mean(dim=(1, 2))  # mean of S v over channels and pixels
        a = con * smat * scale  # (B, 3, 3), applied to the sampled pixel values
        bias = ((1 - con[:, 0, 0]) * img_mean + p.brightness.to(dev)).view(b, 1).expand(b, 3)
        lo, hi = torch.zeros(3, device=dev), torch.ones(3, device=dev)
        if self.mean is not None:
            mu, sd = self.mean.to(dev), self.std.to(dev)
            a = a / sd.view(1, 3, 1)
            bias = (bias - mu) / sd
            lo, hi = (lo - mu) / sd, (hi - mu) / sd
        flat = out.view(b, 3, -1)
        tmp = self._buffer("colour", flat.shape, dev)
        torch.baddbmm(bias.unsqueeze(-1), a, flat, out=tmp)
        torch.clamp(tmp.view_as(out), lo.view(1, 3, 1, 1), hi.view(1, 3, 1, 1), out=out)
        return out  # ``out`` came fresh from the warp: safe to return

    def _warp_grid_sample(self, x: Tensor, m: Tensor) -> Tensor:
        """Bilinear warp of ``x`` (B, 3, H, W) by the output-to-input maps ``m`` (B, 3, 3),
        coordinates in [-1, 1] with pixel centres at ``(2 i + 1) / n - 1``: float (B, 3, S, S)
        in the input's units, reflection padding."""
        b, dev, s = x.shape[0], x.device, self.size
        xf = self._buffer("input", x.shape, dev).copy_(x)  # uint8 -> float without a fresh allocation
        lin = (torch.arange(s, device=dev, dtype=torch.float32) * 2 + 1) / s - 1
        cx, cy = lin.view(1, 1, s), lin.view(1, s, 1)

        def row(k: int, const: Tensor | float) -> Tensor:  # m[k, 0] * x + m[k, 1] * y + const, (B, S, S)
            return m[:, k, 0].view(b, 1, 1) * cx + (m[:, k, 1].view(b, 1, 1) * cy + const)

        inv_w = row(2, m[:, 2, 2].view(b, 1, 1)).clamp_(min=1e-3).reciprocal_()  # perspective divide
        grid = self._buffer("grid", (b, s, s, 2), dev)
        torch.mul(row(0, m[:, 0, 2].view(b, 1, 1)), inv_w, out=grid[..., 0])
        torch.mul(row(1, m[:, 1, 2].view(b, 1, 1)), inv_w, out=grid[..., 1])
        return F.grid_sample(xf, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def _warp_planes(self, x: Tensor, m: Tensor) -> Tensor:
        """The same warp as :meth:`_warp_grid_sample` for uint8 ``x`` on the CPU, through
        OpenCV's ``warpPerspective`` on each channel plane (``BORDER_REFLECT`` is
        ``grid_sample``'s reflection about the outer pixel edges): float (B, 3, S, S) in
        0..255, whole levels. ``m`` is turned into pixel coordinates, float64:
        ``input_pixel = D_in @ m @ T_out @ output_pixel``."""
        b, (h, w), s = x.shape[0], x.shape[2:], self.size
        to_norm = torch.tensor([[2 / s, 0, 1 / s - 1], [0, 2 / s, 1 / s - 1], [0, 0, 1]], dtype=torch.float64)
        to_pix = torch.tensor([[w / 2, 0, w / 2 - 0.5], [0, h / 2, h / 2 - 0.5], [0, 0, 1]], dtype=torch.float64)
        mats = (to_pix @ m.double() @ to_norm).numpy()
        src = x.contiguous().numpy()
        planes = np.empty((b, 3, s, s), dtype=np.uint8)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        for i in range(b):
            for c in range(3):
                cv2.warpPerspective(src[i, c], mats[i], (s, s), dst=planes[i, c], flags=flags, borderMode=cv2.BORDER_REFLECT)
        return torch.from_numpy(planes).float()

    def _buffer(self, name: str, shape, device: torch.device) -> Tensor:
        """A float32 work buffer reused across batches of the same shape (fresh 40-60 MB
        allocations page-fault on every batch and cost more than the arithmetic)."""
        key = (name, tuple(shape), str(device))
        buf = self._buffers_cache.get(key)
        if buf is None:
            self._buffers_cache = {k: v for k, v in self._buffers_cache.items() if k[0] != name}
            buf = self._buffers_cache[key] = torch.empty(shape, dtype=torch.float32, device=device)
        return buf

    def extra_repr(self) -> str:
        return (f"size={self.size}, flip={self.flip}, flip_vert={self.flip_vert}, max_rotate={self.max_rotate}, "
                f"max_zoom={self.max_zoom}, max_warp={self.max_warp}, max_lighting={self.max_lighting}")  # fmt: skip
