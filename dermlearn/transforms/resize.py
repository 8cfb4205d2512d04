"""Resize a batch to the model's square input (the evaluation pipeline's resize step)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .step import Step

__all__ = ["Resize"]


def _to_float(x: Tensor) -> Tensor:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images (B, 3, H, W), got shape {tuple(x.shape)}")
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


class Resize(Step):
    """uint8 or float ``(B, 3, H, W)`` -> float ``(B, 3, size, size)`` in [0, 1]
    (bilinear with antialiasing; identity when the size already matches)."""

    export_name = "resize"
    export_args = ("size",)
    graph_exporters = ("dynamo", "torchscript")

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
