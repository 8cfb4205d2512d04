"""The fast path on GPUs: mixed precision and channels-last memory format, as callbacks.

``MixedPrecision``: the forward pass and the loss run under ``torch.autocast``, bf16 where
the device supports it (recent GPUs, and the CPU), else fp16 with a ``GradScaler`` (loss
scaling against underflow; steps with inf/NaN gradients are skipped by the scaler).
Parameters and optimizer state stay float32.

``ChannelsLast``: the model and the input batches in ``torch.channels_last`` (NHWC), which
convolutions on tensor cores prefer.
"""

from __future__ import annotations

import torch

from dermlearn.callback import Callback, CancelStepException

__all__ = ["ChannelsLast", "MixedPrecision"]


class MixedPrecision(Callback):
    """Autocast the forward pass and the loss.

    Args:
        dtype: ``'auto'`` (bf16 when supported, else fp16), ``'bf16'`` or ``'fp16'``
            (fp16 uses a GradScaler on CUDA).

    Attributes:
        dtype: The resolved torch dtype (after ``before_fit``).
        scaler: The GradScaler, or None.
    """

    order = 10

    def __init__(self, dtype: str = "auto") -> None:
        super().__init__()
        if dtype not in ("auto", "bf16", "fp16"):
            raise ValueError(f"dtype must be 'auto', 'bf16' or 'fp16', got {dtype!r}")
        self.requested = dtype
        self.dtype: torch.dtype | None = None
        self.scaler: torch.amp.GradScaler | None = None
        self._ctx = None

    def before_fit(self) -> None:
        dev = self.learn.device.type
        if self.requested == "bf16" or (self.requested == "auto" and (dev != "cuda" or torch.cuda.is_bf16_supported())):
            self.dtype = torch.bfloat16
        else:
            self.dtype = torch.float16
        self.scaler = torch.amp.GradScaler(dev) if (self.dtype == torch.float16 and dev == "cuda") else None

    def before_batch(self) -> None:
        self._ctx = torch.autocast(self.learn.device.type, dtype=self.dtype)
        self._ctx.__enter__()

    def _exit(self) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None

    def after_loss(self) -> None:
        self._exit()  # backward and the step run outside autocast

    def after_cancel_batch(self) -> None:
        self._exit()

    def after_batch(self) -> None:
        self._exit()

    def release(self) -> None:
        self._exit()  # an exception in the forward pass or the loss must not leave autocast on

    def before_backward(self) -> None:
        if self.scaler is not None:
            self.learn.loss_grad = self.scaler.scale(self.learn.loss_grad)

    def before_step(self) -> None:
        if self.scaler is not None:
            self.scaler.step(self.learn.opt)
            self.scaler.update()
            raise CancelStepException()  # the scaler has stepped (or skipped an inf/NaN step)

    def state_dict(self) -> dict:
        return {"scaler": self.scaler.state_dict()} if self.scaler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])


class ChannelsLast(Callback):
    """Model and 4-D input batches in ``torch.channels_last`` memory format."""

    order = 11

    def before_fit(self) -> None:
        self.learn.model.to(memory_format=torch.channels_last)

    def before_batch(self) -> None:
        xb = self.learn.xb
        if isinstance(xb, torch.Tensor) and xb.ndim == 4:
            self.learn.xb = xb.contiguous(memory_format=torch.channels_last)
