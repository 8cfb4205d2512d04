"""Illumination correction: estimate a smooth illumination map and divide it out.

The map is estimated on the luminance at a working resolution: a morphological
**closing** with a kernel wider than the lesion (dilation then erosion: dark structures
smaller than the kernel, the lesion included, are filled with the surrounding skin), then
a large Gaussian blur; it is upsampled to the image size. Dividing by it (and multiplying by
its mean, to keep the mean brightness) flattens uneven lighting and shadows. A plain blur
would count a large dark lesion as shadow and brighten it; the closing keeps its contrast.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ._common import check_images, like_input, luminance, to_unit
from .step import RandomStep, Step

__all__ = ["CorrectIllumination", "RandomIllumination", "correct_illumination", "estimate_illumination", "illumination_ramp"]


def _gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    pad_r = min(r, x.shape[-1] - 1, x.shape[-2] - 1)
    x = F.pad(x, (pad_r, pad_r, pad_r, pad_r), mode="reflect")
    if pad_r < r:  # tiny images: replicate the rest
        x = F.pad(x, (r - pad_r,) * 4, mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    return F.conv2d(x, k.view(1, 1, -1, 1))


def _dilate(x: Tensor, k: int) -> Tensor:
    """Max filter with a ``k x k`` square, as a row pass and a column pass (exact, separable)."""
    p = k // 2
    x = F.max_pool2d(F.pad(x, (p, p, 0, 0), mode="replicate"), (1, k), stride=1)
    return F.max_pool2d(F.pad(x, (0, 0, p, p), mode="replicate"), (k, 1), stride=1)


def _erode(x: Tensor, k: int) -> Tensor:
    return -_dilate(-x, k)


def estimate_illumination(x: Tensor, kernel_frac: float = 0.35, work_size: int = 96) -> Tensor:
    """The smooth illumination map of each image, ``(B, 1, H, W)``, positive.

    Args:
        x: Images ``(B, 3, H, W)``, uint8 or float in [0, 1].
        kernel_frac: Closing kernel width as a fraction of the working image side; it must
            be wider than the lesions (0.35: lesions up to about a third of the image).
        work_size: Side of the working resolution (the shorter side is scaled to it).
    """
    check_images(x, "estimate_illumination")
    y = luminance(to_unit(x).float())
    h, w = y.shape[-2:]
    scale = work_size / min(h, w)
    small = F.interpolate(y, size=(max(8, round(h * scale)), max(8, round(w * scale))), mode="area") if scale < 1 else y
    k = max(3, int(kernel_frac * min(small.shape[-2:])) | 1)
    closed = _erode(_dilate(small, k), k)
    smooth = _gaussian_blur(closed, sigma=k / 2)
    return F.interpolate(smooth, size=(h, w), mode="bilinear", align_corners=False).clamp(min=1e-3)


def correct_illumination(x: Tensor, kernel_frac: float = 0.35, work_size: int = 96) -> Tensor:
    """Divide each image by its illumination map, keeping its mean brightness.

    Args:
        x: Images ``(B, 3, H, W)``, uint8 or float in [0, 1].
        kernel_frac, work_size: See :func:`estimate_illumination`.

    Returns:
        Same shape and dtype as ``x`` (clamped to [0, 1]; uint8 rounded).
    """
    illum = estimate_illumination(x, kernel_frac, work_size)
    gain = illum.mean(dim=(2, 3), keepdim=True) / illum
    return like_input((to_unit(x).float() * gain).clamp(0, 1), x)


def illumination_ramp(b: int, h: int, w: int, low: Tensor, angle: Tensor, device: torch.device | None = None) -> Tensor:
    """Linear illumination fields ``(B, 1, H, W)`` from ``low`` (one side) to 1 (the other)
    along direction ``angle`` (radians); ``low`` and ``angle`` are ``(B,)``."""
    yy, xx = torch.meshgrid(torch.linspace(-0.5, 0.5, h, device=device), torch.linspace(-0.5, 0.5, w, device=device), indexing="ij")
    t = xx[None] * torch.cos(angle).view(b, 1, 1) + yy[None] * torch.sin(angle).view(b, 1, 1)
    t = (t - t.amin(dim=(1, 2), keepdim=True)) / (t.amax(dim=(1, 2), keepdim=True) - t.amin(dim=(1, 2), keepdim=True)).clamp(min=1e-6)
    return (low.view(b, 1, 1) + (1 - low.view(b, 1, 1)) * t)[:, None]


class CorrectIllumination(Step):
    """Deterministic illumination correction (see :func:`correct_illumination`)."""

    export_args = ("kernel_frac", "work_size")
    graph_exporters = ("dynamo",)
    cli_name = "illumination"

    def __init__(self, kernel_frac: float = 0.35, work_size: int = 96) -> None:
        super().__init__()
        self.kernel_frac, self.work_size = kernel_frac, work_size

    def forward(self, x: Tensor) -> Tensor:
        return correct_illumination(x, self.kernel_frac, self.work_size)


class RandomIllumination(RandomStep):
    """Multiply images by a random linear illumination ramp (darkest side ``low`` in
    ``low_range``, random direction) with probability ``p``: augmentation, and how the
    experiments degrade images. ``sample``/``apply`` replay parameters."""

    def __init__(self, low_range: tuple[float, float] = (0.4, 0.8), p: float = 0.5, seed: int = 0) -> None:
        super().__init__(seed)
        self.low_range, self.p = low_range, p

    def sample(self, b: int) -> tuple[Tensor, Tensor]:
        lo, hi = self.low_range
        low = lo + (hi - lo) * torch.rand(b, generator=self.generator)
        angle = 2 * math.pi * torch.rand(b, generator=self.generator)
        on = torch.rand(b, generator=self.generator) < self.p
        return torch.where(on, low, torch.ones_like(low)), angle

    def apply_params(self, x: Tensor, params: tuple[Tensor, Tensor]) -> Tensor:
        """Apply ramps sampled by :meth:`sample` to ``x`` (replays them exactly)."""
        check_images(x, "RandomIllumination")
        low, angle = (p.to(x.device) for p in params)
        field_ = illumination_ramp(x.shape[0], x.shape[2], x.shape[3], low, angle, x.device)
        return like_input(to_unit(x).float() * field_, x)
