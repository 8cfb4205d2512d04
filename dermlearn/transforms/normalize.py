"""Normalise a batch with per-channel statistics (ImageNet's by default): the last step
before the model."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .step import Step

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Normalize"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

class Normalize(Step):
    """uint8 ``[0, 255]`` or float ``[0, 1]`` images ``(B, C, H, W)`` -> float32
    ``(x / 255 - mean) / std`` (ImageNet statistics by default).

    Args:
        mean: Per-channel mean in [0, 1] units.
        std: Per-channel standard deviation in [0, 1] units.
    """

    export_name = "normalize"
    export_args = ("mean", "std")
    graph_exporters = ("dynamo", "torchscript")

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} channels but std has {len(std)}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(f"Normalize expects (B, {self.mean.shape[1]}, H, W) images, got shape {tuple(x.shape)}")
        mean, std = self.mean.to(x.device), self.std.to(x.device)
        if x.dtype == torch.uint8:
            return (x.float().div_(255.0) - mean) / std
        return (x.float() - mean) / std

    def decode(self, x: Tensor) -> Tensor:
        """Inverse: normalised float -> float in [0, 1] (clamped)."""
        return (x * self.std.to(x.device) + self.mean.to(x.device)).clamp(0.0, 1.0)

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"
