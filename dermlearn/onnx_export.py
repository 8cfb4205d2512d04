"""ONNX export of the inference model, preprocessing included where ONNX can express it.

The exported graph takes uint8 images ``(B, 3, S, S)`` (already resized to the model's
input size), converts them to float, normalises them, runs the network and returns class
probabilities ``(B, C)``. Corrections such as illumination correction are not part of the
graph; apply them before, or use the PyTorch model. Needs the ``onnx`` extra
(``pip install 'dermlearn[onnx]'``); checked against PyTorch with onnxruntime in the tests.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from .dataloaders import Normalize

__all__ = ["export_onnx"]


class _InferenceGraph(nn.Module):
    def __init__(self, model: nn.Module, norm: Normalize | None, sigmoid: bool, temperature: float = 1.0) -> None:
        super().__init__()
        self.model, self.norm, self.sigmoid, self.temperature = model, norm, sigmoid, temperature

    def forward(self, x: Tensor) -> Tensor:
        x = x.float() / 255.0
        if self.norm is not None:
            x = (x - self.norm.mean) / self.norm.std
        logits = self.model(x)
        if self.temperature != 1.0:
            logits = logits / self.temperature
        return torch.sigmoid(logits) if self.sigmoid else torch.softmax(logits, dim=-1)


def export_onnx(learn, path: str | os.PathLike, input_size: int | None = None, opset: int = 18) -> Path:
    """Write ``learn``'s model as ONNX: uint8 ``(B, 3, S, S)`` in, probabilities ``(B, C)`` out
    (dynamic batch size), with ``learn.temperature`` applied when
    :meth:`~dermlearn.Learner.calibrate` set one.

    Args:
        learn: A Learner (e.g. from :func:`~dermlearn.export.load_learner`).
        path: Output ``.onnx`` file (written atomically).
        input_size: ``S``; default: the resize step of the preprocessing.
        opset: ONNX opset version.

    Raises:
        ImportError: the ``onnx`` extra is not installed.
        ValueError: the input size is unknown.
    """
    try:
        import onnx  # noqa: F401
    except ImportError as e:
        raise ImportError("ONNX export needs the onnx extra: pip install 'dermlearn[onnx]'") from e
    from .io import atomic_write

    norm = next((t for t in learn.dls.batch_tfms if isinstance(t, Normalize)), None)
    if input_size is None:
        input_size = next((int(t.size) for t in learn.dls.batch_tfms if type(t).__name__ == "Resize"), None)
    if input_size is None:
        raise ValueError("pass input_size=: the preprocessing has no resize step to read it from")
    sigmoid = type(learn.loss_func).__name__ == "BCEWithLogitsOneHot"
    graph = _InferenceGraph(learn.model, norm, sigmoid, float(learn.temperature)).cpu().eval()
    example = torch.zeros(1, 3, input_size, input_size, dtype=torch.uint8)
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(graph, (example,), buf, input_names=["images"], output_names=["probs"],
                          dynamic_axes={"images": {0: "batch"}, "probs": {0: "batch"}}, opset_version=opset, dynamo=False)  # fmt: skip
    learn.model.to(learn.device)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))
