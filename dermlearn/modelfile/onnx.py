"""ONNX export of the inference model, with the preprocessing that ONNX can express.

The exported graph takes uint8 images ``(B, 3, S, S)`` (already presized to the model's
input size, as :func:`dermlearn.data.decode.image_item` does), applies the model's
preprocessing steps (``dls.batch_tfms``: corrections such as illumination correction, Shades
of Gray and gamma, then the resize and the normalisation) exactly as
:meth:`~dermlearn.Learner.predict` does, runs the network and returns class probabilities
``(B, C)``. Steps that run outside PyTorch (``CropVignette``, ``RemoveHair``: OpenCV) cannot
be in the graph: when the model has any, they and every step before them are left out,
``export_onnx`` warns, and the file names them in its metadata (``dermlearn.outside_graph``,
beside ``dermlearn.classes`` and ``dermlearn.input_size``; JSON): apply them, in that order,
to the uint8 images before the graph. Needs the ``onnx`` extra (``pip install
'dermlearn[onnx]'``: onnx, onnxscript, onnxruntime); checked against PyTorch with
onnxruntime in the tests.

The graph is traced with PyTorch's ``torch.export``-based exporter (``exporter='dynamo'``,
torch >= 2.5, the default). ``exporter='torchscript'`` uses the older TorchScript-based one,
which PyTorch deprecates and will remove; it is kept for models ``torch.export`` cannot trace
and for torch < 2.5, and leaves every correction out of the graph.
"""

from __future__ import annotations

import copy
import inspect
import io
import json
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from dermlearn.io import atomic_write
from dermlearn.losses import ACTIVATIONS, activation_name
from dermlearn.transforms.normalize import Normalize
from dermlearn.transforms.resize import Resize

__all__ = ["export_onnx", "split_steps"]


class _InferenceGraph(nn.Module):
    """uint8 images -> ``steps`` in order -> (uint8 left: / 255) -> model -> probabilities."""

    def __init__(self, model: nn.Module, steps: list[nn.Module], activation: str, temperature: float = 1.0) -> None:
        super().__init__()
        self.model, self.steps, self.temperature = model, nn.ModuleList(steps), temperature
        self.activation = ACTIVATIONS[activation]  # what the Learner reports (dermlearn.losses)

    def forward(self, x: Tensor) -> Tensor:
        for step in self.steps:
            x = step(x)
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        logits = self.model(x)
        if self.temperature != 1.0:
            logits = logits / self.temperature
        return self.activation(logits)


def split_steps(steps: list[nn.Module], exporter: str = "dynamo") -> tuple[list[nn.Module], list[nn.Module]]:
    """``(outside, inside)``: the steps to apply before the ONNX graph (the last step that the
    exporter cannot trace, as its ``graph_exporters`` say, and all before it) and those in it.
    With ``'torchscript'`` only the resize and the normalisation go in the graph.

    Raises:
        ValueError: a resize or normalisation step would have to be outside (it comes before
            a step the graph cannot hold): the graph's uint8 input could not follow it.
    """
    last_out = max((i for i, t in enumerate(steps) if exporter not in getattr(t, "graph_exporters", ())), default=-1)
    outside, inside = steps[: last_out + 1], steps[last_out + 1 :]
    late = [repr(t) for t in outside if isinstance(t, (Resize, Normalize))]
    if late:
        raise ValueError(f"cannot export to ONNX: {', '.join(late)} comes before {outside[-1]!r}, which the graph cannot hold")
    return outside, inside


EXPORTERS = ("dynamo", "torchscript")


def export_onnx(learn, path: str | os.PathLike, input_size: int | None = None, opset: int = 18,
                exporter: str = "dynamo") -> Path:  # fmt: skip
    """Write ``learn``'s model as ONNX: uint8 ``(B, 3, S, S)`` in, probabilities ``(B, C)`` out
    (dynamic batch size), with the preprocessing steps that ONNX can express (see the module's
    description) and ``learn.temperature`` when :meth:`~dermlearn.Learner.calibrate` set one.

    Args:
        learn: A Learner (e.g. from :func:`~dermlearn.modelfile.export.load_learner`).
        path: Output ``.onnx`` file (written atomically).
        input_size: ``S``; default: :attr:`~dermlearn.Learner.input_size`.
        opset: ONNX opset version.
        exporter: ``'dynamo'`` (``torch.export``-based, default) or ``'torchscript'``
            (PyTorch's deprecated exporter).

    Returns:
        ``path``.

    Raises:
        ImportError: the ``onnx`` extra (for ``'dynamo'``: onnxscript too) is not installed.
        ValueError: the input size is unknown, ``exporter`` is not one of the two,
            ``'dynamo'`` was asked of torch < 2.5, or a step the graph cannot hold comes after
            the resize or the normalisation (:func:`split_steps`).
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

    if input_size is None:
        input_size = learn.input_size
    if input_size is None:
        raise ValueError("pass input_size=: neither a resize step of the preprocessing nor the data says it")
    outside, inside = split_steps(list(learn.dls.batch_tfms), exporter)
    was_training = learn.model.training
    steps = copy.deepcopy(inside)  # the graph's own copies: moving them to the CPU leaves the learner's where they are
    graph = _InferenceGraph(learn.model, steps, activation_name(learn.loss_func), float(learn.temperature)).cpu().eval()
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
    left_out = [repr(t) for t in outside]
    if left_out:
        warnings.warn(f"the ONNX graph leaves out the corrections {', '.join(left_out)}: apply them in this order to the "
                      "uint8 images before the graph, or predict with the PyTorch model (load_learner); the file lists "
                      "them in its metadata ('dermlearn.outside_graph')", stacklevel=2)  # fmt: skip
    onnx.helper.set_model_props(proto, {"dermlearn.classes": json.dumps(list(learn.dls.vocab or [])),
                                        "dermlearn.input_size": str(input_size),
                                        "dermlearn.outside_graph": json.dumps(left_out)})  # fmt: skip
    data = proto.SerializeToString()
    return atomic_write(path, lambda f: f.write(data))
