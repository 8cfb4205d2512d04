"""Grad-CAM (Selvaraju et al. 2017) and Guided Grad-CAM.

For a target score ``y`` and the activations ``A`` of a convolutional layer
(``(B, K, h, w)``), the channel weights are ``alpha_k = mean_ij dy/dA_kij`` and the map is
``ReLU(sum_k alpha_k A_k)``, upsampled bilinearly to the input size
(``align_corners=False``). This equals captum's ``LayerGradCam`` with
``relu_attributions=True`` followed by ``LayerAttribution.interpolate(..., 'bilinear')``
(tested).

Implementation notes: the forward hook keeps the layer's output as a leaf that requires
grad and returns a clone of it, so later in-place operations cannot corrupt it and the
gradient is taken with ``torch.autograd.grad`` to that leaf only: nothing flows into the
parameters, which also makes it work with frozen parameters. With ``low_memory=True`` the
layers before the target run without autograd.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from .attribution import Attribution
from .guided_backprop import GuidedBackprop
from .model_guard import ModelGuard
from .targets import Target, resolve_target

__all__ = ["GradCAM", "GuidedGradCAM", "default_cam_layer"]


class _CaptureReLUOf(TorchFunctionMode):
    """Replace the output of the ReLU applied to a marked tensor by ``capture(output)``."""

    _RELUS = {F.relu, F.relu_, torch.relu, torch.relu_, Tensor.relu, Tensor.relu_}

    def __init__(self, marked: list[Tensor], capture: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.marked, self.capture = marked, capture

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self._RELUS and self.marked and args[0] is self.marked[-1]:
            return self.capture(args[0].clamp(min=0))
        return func(*args, **(kwargs or {}))


def default_cam_layer(model: nn.Module) -> tuple[nn.Module, bool]:
    """The layer Grad-CAM hooks by default, and whether a ReLU must be applied to its output.

    * dermlearn models: ``model.cam_layer`` (ResNet ``layer4``; DenseNet's final ``nn.ReLU``);
    * torchvision ResNet: ``layer4``;
    * torchvision DenseNet: ``features`` followed by the ReLU that torchvision applies
      functionally in ``forward`` (so the map is taken after it).

    Raises:
        ValueError: for other models (pass ``layer=``).
    """
    import torchvision

    m = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    if hasattr(m, "cam_layer"):
        return m.cam_layer, False
    if isinstance(m, torchvision.models.ResNet):
        return m.layer4, False
    if isinstance(m, torchvision.models.DenseNet):
        return m.features, True
    raise ValueError(f"no default Grad-CAM layer for {type(m).__name__}: pass layer= (a module whose output is (B, K, h, w))")


class GradCAM:
    """Grad-CAM maps for a batch.

    Args:
        model: Maps images ``(B, C, H, W)`` to logits ``(B, n_classes)``.
        layer: Module whose output ``(B, K, h, w)`` is explained (called once per forward);
            default :func:`default_cam_layer`.
        low_memory: Run the layers before ``layer`` without autograd.
        act: Logits -> probabilities for the reported ``probs`` (softmax by default).

    Call with ``cam(x, target)``; ``x`` is the model input (normalised float), ``target`` is
    ``'top1'``, ``'runner_up'``, a class index, indices ``(B,)`` or a function of the logits
    (:func:`~dermlearn.interpret.targets.logit_diff`). Returns an :class:`Attribution` with
    maps ``(B, H, W)``. The model is left exactly as it was (:class:`ModelGuard`).
    """

    def __init__(self, model: nn.Module, layer: nn.Module | None = None, low_memory: bool = False,
                 act: Callable[[Tensor], Tensor] | None = None) -> None:  # fmt: skip
        self.model = model
        if layer is None:
            self.layer, self.relu_after = default_cam_layer(model)
        else:
            self.layer, self.relu_after = layer, False
        self.low_memory = low_memory
        self.act = act if act is not None else (lambda z: z.softmax(dim=-1))

    def _capture(self, out: Tensor, store: list[Tensor]) -> Tensor:
        if store:
            raise RuntimeError("the Grad-CAM layer ran twice in one forward pass; pick a layer called once")
        a = out.detach().requires_grad_(True)
        store.append(a)
        torch.set_grad_enabled(True)  # layers after the target build the graph (low-memory mode)
        return a.clone()  # later in-place ops change the clone, never the stored activations

    def _forward(self, x: Tensor, guard: ModelGuard) -> tuple[Tensor, Tensor]:
        store: list[Tensor] = []
        marked: list[Tensor] = []
        if self.relu_after:
            # torchvision DenseNet applies F.relu to the layer's output in forward():
            # capture the output of that call, so the map is taken after the ReLU
            guard.add_hook(self.layer.register_forward_hook(lambda m, i, out: marked.append(out)))
            mode: contextlib.AbstractContextManager = _CaptureReLUOf(marked, lambda t: self._capture(t, store))
        else:
            guard.add_hook(self.layer.register_forward_hook(lambda m, i, out: self._capture(out, store)))
            mode = contextlib.nullcontext()
        with torch.set_grad_enabled(not self.low_memory), mode:
            logits = self.model(x)
        if not store:
            raise RuntimeError("the Grad-CAM layer was not called by the model's forward pass")
        return logits, store[0]

    def layer_maps(self, x: Tensor, target: Target = "top1", relu: bool = True) -> tuple[Tensor, Attribution]:
        """Maps at the layer's resolution ``(B, h, w)`` and the attribution info."""
        with ModelGuard(self.model) as guard:
            logits, act = self._forward(x, guard)
            scores, classes = resolve_target(logits, target)
            (grads,) = torch.autograd.grad(scores.sum(), act)
        weights = grads.mean(dim=(2, 3), keepdim=True)
        cam = (weights * act.detach()).sum(dim=1)
        if relu:
            cam = F.relu(cam)
        probs = self.act(logits.detach().float())
        return cam, Attribution(cam, classes, scores.detach(), probs)

    def __call__(self, x: Tensor, target: Target = "top1", relu: bool = True) -> Attribution:
        if x.ndim != 4:
            raise ValueError(f"GradCAM expects a batch (B, C, H, W), got shape {tuple(x.shape)}")
        cam, res = self.layer_maps(x, target, relu)
        res.maps = F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        return res


class GuidedGradCAM:
    """Guided Grad-CAM: Guided Backprop gradients ``(B, C, H, W)`` times the upsampled
    Grad-CAM map of the same target (broadcast over channels)."""

    def __init__(self, model: nn.Module, layer: nn.Module | None = None, act: Callable[[Tensor], Tensor] | None = None) -> None:
        self.cam = GradCAM(model, layer, act=act)
        self.gbp = GuidedBackprop(model, act=act)

    def __call__(self, x: Tensor, target: Target = "top1") -> Attribution:
        cam = self.cam(x, target)
        target_used = cam.classes if cam.classes is not None else target
        g = self.gbp(x, target_used)
        g.maps = g.maps * cam.maps[:, None]
        return g
