"""Input checks and small helpers shared by the image operations."""

from __future__ import annotations

import torch
from torch import Tensor

LUMA = (0.299, 0.587, 0.114)


def tracing() -> bool:
    """True while ``torch.compile`` or ``torch.export`` traces: checks that read a tensor's
    values (to raise a clear error) are skipped then, as a traced tensor has none."""
    if hasattr(torch.compiler, "is_compiling"):  # torch >= 2.3
        return torch.compiler.is_compiling()
    return torch._dynamo.is_compiling()  # torch 2.1-2.2, which setup.cfg allows


def check_images(x: Tensor, name: str) -> None:
    """``x`` must be ``(B, 3, H, W)`` uint8 or float in [0, 1].

    The value range of float images is checked on the CPU only (on a GPU the check would
    cost a host sync per batch), and not while ``torch.compile`` or ``torch.export`` traces
    (a value cannot be read from a traced tensor)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} expects a torch.Tensor (B, 3, H, W), got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} expects images (B, 3, H, W), got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8 and not x.dtype.is_floating_point:
        raise TypeError(f"{name} expects uint8 or float images, got {x.dtype}")
    if x.dtype.is_floating_point and x.device.type == "cpu" and x.numel() and not tracing():
        lo, hi = float(x.min()), float(x.max())
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(f"{name} expects float images in [0, 1], got values in [{lo:.3g}, {hi:.3g}] "
                             "(pass uint8 images, or divide by 255)")  # fmt: skip


def to_unit(x: Tensor) -> Tensor:
    """uint8 -> float in [0, 1]; floats unchanged."""
    return x.float() / 255.0 if x.dtype == torch.uint8 else x


def like_input(y: Tensor, x: Tensor) -> Tensor:
    """Back to ``x``'s dtype: uint8 inputs get rounded (not truncated) uint8 outputs."""
    if x.dtype == torch.uint8:
        return (y.clamp(0, 1) * 255.0).round_().to(torch.uint8)
    return y.to(x.dtype)


def luminance(x: Tensor) -> Tensor:
    """Rec. 601 luma of float images ``(B, 3, H, W)`` -> ``(B, 1, H, W)``."""
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def per_sample(v: float | Tensor, b: int, device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
    """A scalar or ``(B,)`` parameter as a ``(B, 1, 1, 1)`` tensor."""
    t = torch.as_tensor(v, dtype=dtype, device=device)
    if t.ndim == 0:
        t = t.expand(b)
    if t.shape != (b,):
        raise ValueError(f"a per-sample parameter must be a scalar or have {b} values, got shape {tuple(t.shape)}")
    return t.view(b, 1, 1, 1)
