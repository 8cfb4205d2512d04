"""A context manager that leaves a model exactly as it found it after an attribution.

Inside the block the model is in eval mode and its parameters do not require gradients
(attribution needs gradients with respect to activations or inputs only). On exit, also
when the block raises: every module's train/eval flag, every BatchNorm running statistic,
every parameter's ``requires_grad`` flag and ``.grad`` are restored, and every hook
registered through :meth:`ModelGuard.add_hook` is removed.
"""

from __future__ import annotations

from types import TracebackType

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = ["ModelGuard"]


class ModelGuard:
    """Use as ``with ModelGuard(model) as guard: guard.add_hook(module.register_forward_hook(f))``."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.handles: list[RemovableHandle] = []

    def add_hook(self, handle: RemovableHandle) -> RemovableHandle:
        """Track a hook handle so that it is removed on exit."""
        self.handles.append(handle)
        return handle

    def __enter__(self) -> ModelGuard:
        m = self.model
        self._modes = [(mod, mod.training) for mod in m.modules()]
        self._req = [(p, p.requires_grad, p.grad) for p in m.parameters()]
        self._bufs = [(b, b.detach().clone()) for mod in m.modules() if isinstance(mod, nn.modules.batchnorm._BatchNorm)
                      for b in mod.buffers(recurse=False)]  # fmt: skip
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()
        for mod, training in self._modes:
            mod.training = training
        for p, req, grad in self._req:
            p.requires_grad_(req)
            p.grad = grad
        with torch.no_grad():
            for b, saved in self._bufs:
                b.copy_(saved)
