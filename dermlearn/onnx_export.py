"""ONNX export of the inference model, preprocessing included where ONNX can express it.

The exported graph takes uint8 images ``(B, 3, S, S)`` (already resized to the model's
input size), converts them to float, normalises them, runs the network and returns class
probabilities ``(B, C)``. Corrections such as illumination correction are not part of the
graph: ``export_onnx`` warns when the model has any, and the file names them in its metadata
(``dermlearn.outside_graph``, beside ``dermlearn.classes`` and ``dermlearn.input_size``, JSON);
apply them before, or use the PyTorch model. Needs the ``onnx`` extra
(``pip install 'dermlearn[onnx]'``: onnx, onnxscript, onnxruntime); checked against PyTorch
with onnxruntime in the tests.

The graph is traced with PyTorch's ``torch.export``-based exporter (``exporter='dynamo'``,
torch >= 2.5, the default). ``exporter='torchscript'`` uses the older TorchScript-based one,
which PyTorch deprecates and will remove; it is kept for models ``torch.export`` cannot trace
and for torch < 2.5.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from .data.augment import Resize
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


EXPORTERS = ("dynamo", "torchscript")


def export_onnx(learn, path: str | os.PathLike, input_size: int | None = None, opset: int = 18,
                exporter: str = "dynamo") -> Path:  # fmt: skip
    """Write ``learn``'s model as ONNX: uint8 ``(B, 3, S, S)`` in, probabilities ``(B, C)`` out
    (dynamic batch size), with ``learn.temperature`` applied when
    :meth:`~dermlearn.Learner.calibrate` set one.

    Args:
        learn: A Learner (e.g. from :func:`~dermlearn.export.load_learner`).
        path: Output ``.onnx`` file (written atomically).
        input_size: ``S``; default: :attr:`~dermlearn.Learner.input_size`.
        opset: ONNX opset version.
        exporter: ``'dynamo'`` (``torch.export``-based, default) or ``'torchscript'``
            (PyTorch's deprecated exporter).

    Returns:
        ``path``.

    Raises:
        ImportError: the ``onnx`` extra (for ``'dynamo'``: onnxscript too) is not installed.
        ValueError: the input size is unknown, ``exporter`` is not one of the two, or
            ``'dynamo'`` was asked of torch < 2.5.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    try:
        import onnx
        import onnx.helper

        if exporter == "dynamo":
            import onnxscript  # noqa: F401
    except ImportError as e:
        raise ImportError(f"ONNX export ({exporter!r}) needs the onnx extra: pip install 'dermlearn[onnx]' "
                          f"({e.name} is missing)") from e  # fmt: skip
    if exporter == "dynamo" and "dynamo" not in inspect.signature(torch.onnx.export).parameters:
        raise ValueError(f"exporter='dynamo' needs torch >= 2.5 (this is {torch.__version__}); "
                         "pass exporter='torchscript'")  # fmt: skip
    from .io import atomic_write

    norm = next((t for t in learn.dls.batch_tfms if isinstance(t, Normalize)), None)
    if input_size is None:
        input_size = learn.input_size
    if input_size is None:
        raise ValueError("pass input_size=: neither a resize step of the preprocessing nor the data says it")
    sigmoid = type(learn.loss_func).__name__ == "BCEWithLogitsOneHot"
    was_training = learn.model.training
    graph = _InferenceGraph(learn.model, norm, sigmoid, float(learn.temperature)).cpu().eval()
    example = torch.zeros(2, 3, input_size, input_size, dtype=torch.uint8)
    names = {"input_names": ["images"], "output_names": ["probs"], "opset_version": opset}
    try:
        with torch.no_grad():
            if exporter == "dynamo":
                program = torch.onnx.export(graph, (example,), dynamo=True, verbose=False,
                                            dynamic_shapes=({0: torch.export.Dim("batch")},), **names)  # fmt: skip
                proto = program.model_proto
            else:
                buf = io.BytesIO()
                torch.onnx.export(graph, (example,), buf, dynamo=False, **names,
                                  dynamic_axes={"images": {0: "batch"}, "probs": {0: "batch"}})  # fmt: skip
                proto = onnx.load_from_string(buf.getvalue())
    finally:  # leave the model where and as it was
        learn.model.to(learn.device).train(was_training)
    outside = [repr(t) for t in learn.dls.batch_tfms if not isinstance(t, (Normalize, Resize))]
    if outside:
        warnings.warn(f"the ONNX graph leaves out the corrections {', '.join(outside)}: apply them to the images before "
                      "the graph, or predict with the PyTorch model (load_learner); the file lists them in its "
                      "metadata ('dermlearn.outside_graph')", stacklevel=2)  # fmt: skip
    onnx.helper.set_model_props(proto, {"dermlearn.classes": json.dumps(list(learn.dls.vocab or [])),
                                        "dermlearn.input_size": str(input_size),
                                        "dermlearn.outside_graph": json.dumps(outside)})  # fmt: skip
    data = proto.SerializeToString()
    return atomic_write(path, lambda f: f.write(data))
