"""Guided Backpropagation (Springenberg et al. 2015).

The gradient of the target score with respect to the input, where every ReLU passes back
only positive gradients at positive inputs: ``grad_in = grad_out * (x > 0) * (grad_out > 0)``.

Every ReLU is guided, module or functional: while the model runs, a
:class:`torch.overrides.TorchFunctionMode` routes ``F.relu`` / ``torch.relu`` /
``Tensor.relu`` (and their in-place forms) to a guided ReLU. Nothing in the model is
replaced, so torchvision DenseNet's ``F.relu`` before pooling is guided too (module hooks,
as captum uses, miss it). In-place ReLUs stay in place.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from .attribution import Attribution
from .model_guard import ModelGuard
from .targets import Target, resolve_target

__all__ = ["GuideReLUs", "GuidedBackprop"]


class _GuidedReLU(torch.autograd.Function):
    """ReLU whose backward passes ``relu(grad)`` where the input was positive."""

    @staticmethod
    def forward(ctx, x: Tensor, inplace: bool) -> Tensor:
        if inplace:
            ctx.mark_dirty(x)
            out = x.clamp_(min=0)
        else:
            out = x.clamp(min=0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (out,) = ctx.saved_tensors
        # one fused pass: relu(grad) where out > 0, else 0
        return torch.ops.aten.threshold_backward(grad.clamp(min=0), out, 0), None


_RELUS = {F.relu, F.relu_, torch.relu, torch.relu_, Tensor.relu, Tensor.relu_}
_INPLACE = {F.relu_, torch.relu_, Tensor.relu_}


class GuideReLUs(TorchFunctionMode):
    """Within this mode every ReLU call is a guided ReLU. ``count`` says how many ran."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _RELUS:
            self.count += 1
            kwargs = kwargs or {}
            inplace = func in _INPLACE or bool(kwargs.get("inplace", args[1] if len(args) > 1 else False))
            return _GuidedReLU.apply(args[0], inplace)
        return func(*args, **(kwargs or {}))


class GuidedBackprop:
    """Guided Backprop for a batch.

    Args:
        model: Maps images ``(B, C, H, W)`` to logits.
        act: Logits -> probabilities for the reported ``probs`` (softmax by default).

    ``gbp(x, target)`` returns an :class:`Attribution` with maps ``(B, C, H, W)`` (the
    guided gradient with respect to ``x``); targets as for :class:`GradCAM`.
    """

    def __init__(self, model: nn.Module, act: Callable[[Tensor], Tensor] | None = None) -> None:
        self.model = model
        self.act = act if act is not None else (lambda z: z.softmax(dim=-1))

    def __call__(self, x: Tensor, target: Target = "top1") -> Attribution:
        if x.ndim != 4:
            raise ValueError(f"GuidedBackprop expects a batch (B, C, H, W), got shape {tuple(x.shape)}")
        x = x.detach().clone().requires_grad_(True)
        with ModelGuard(self.model), torch.enable_grad():
            with GuideReLUs() as mode:
                logits = self.model(x)
            if mode.count == 0:
                raise RuntimeError("the model ran no ReLU: Guided Backprop would be a plain gradient")
            scores, classes = resolve_target(logits, target)
            (grad,) = torch.autograd.grad(scores.sum(), x)
        return Attribution(grad, classes, scores.detach(), self.act(logits.detach().float()))
