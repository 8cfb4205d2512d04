"""Safe, portable model files: :func:`export_learner` (``learn.export(path)``) writes one,
:func:`read_export_file` and :func:`rebuild` read it back (:func:`dermlearn.load_learner` makes a
Learner of it; :mod:`dermlearn.modelfile.pretrained` keeps the same metadata in the
Hugging Face layout).

One file (torch's zip format) holding only tensors and strings: the model's state dict and
a JSON document with what is needed to rebuild and use it — architecture, head, classes,
input size, normalisation, the loss's activation and temperature, preprocessing steps with their
parameters, and the dermlearn version. Loading never unpickles arbitrary objects
(``torch.load(..., weights_only=True)``); a truncated or tampered file is a clear error.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dermlearn.data.domain import InputDomain
from dermlearn.io import atomic_torch_save, safe_torch_load
from dermlearn.losses import ACTIVATIONS, activation_name
from dermlearn.models import DermModel, create_model
from dermlearn.transforms.step import Step, step_from_spec
from dermlearn.version import __version__

__all__ = ["FORMAT", "ModelFile", "export_learner", "model_metadata", "read_export_file", "rebuild"]

FORMAT = "dermlearn-export"
VERSION = 2  # 2: 'activation' tells single-label BCE models ('normalized_sigmoid') from multi-label ones


def _describe_tfms(tfms) -> list[dict[str, Any]]:
    for t in tfms:
        if not isinstance(t, Step):
            raise TypeError(f"cannot export the preprocessing step {type(t).__name__}: model files keep only "
                            "dermlearn.transforms.Step subclasses that declare export_args")  # fmt: skip
    return [t.export_spec() for t in tfms]


def model_metadata(learn, input_size: int | None = None, extra: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """What a model file keeps of ``learn``: the JSON metadata and the model's weights (on
    the CPU). Shared by :func:`export_learner` and :mod:`dermlearn.modelfile.pretrained`.

    Raises:
        TypeError: the model was not built by ``create_model`` (it could not be rebuilt), or
            a preprocessing step a model file cannot keep.
    """
    model = learn.model.module if isinstance(learn.model, nn.parallel.DistributedDataParallel) else learn.model
    if not isinstance(model, DermModel):
        raise TypeError(f"export needs a model from dermlearn.create_model (got {type(model).__name__}); use learn.save() for other models")
    head_kind = "linear" if isinstance(model.head[0], nn.AdaptiveAvgPool2d) else "fastai"
    steps = _describe_tfms(learn.dls.batch_tfms)
    if input_size is None:
        input_size = learn.input_size
    activation = activation_name(learn.loss_func)
    n_out = model.head[-1].out_features
    domain = _input_domain(learn)
    meta = {
        "format": FORMAT, "format_version": VERSION, "dermlearn_version": __version__, "torch_version": torch.__version__,
        "arch": model.arch, "stem": model.stem, "n_out": n_out, "head": head_kind, "classes": learn.dls.vocab or [str(i) for i in range(n_out)],
        "input_size": input_size, "activation": activation, "temperature": float(learn.temperature), "preprocessing": steps,
        "extra": extra or {}, "input_domain": domain.to_dict() if domain is not None else None,
    }  # fmt: skip
    return meta, {k: v.detach().cpu() for k, v in model.state_dict().items()}


def export_learner(learn, path: str | os.PathLike, input_size: int | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write ``learn``'s model and metadata to ``path`` atomically.

    Args:
        learn: A Learner whose model comes from :func:`dermlearn.create_model`.
        path: Output file (``.pth`` is usual).
        input_size: Model input side; default: :attr:`~dermlearn.Learner.input_size` (the resize step, else the stored images' side).
        extra: More JSON-serialisable metadata to keep (e.g. training settings).

    Raises:
        TypeError: the model was not built by ``create_model`` (it could not be rebuilt).
    """
    meta, weights = model_metadata(learn, input_size, extra)
    return atomic_torch_save({"format": FORMAT, "meta": json.dumps(meta), "model": weights}, path)


def _input_domain(learn):
    """The training domain of ``learn`` (:class:`~dermlearn.data.domain.InputDomain`): what a loaded
    model already carries, else statistics of the training loader's stored uint8 images;
    None for other loaders."""
    if learn.input_domain is not None:
        return learn.input_domain
    images = getattr(getattr(learn.dls.train, "dataset", None), "images", None)
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4 or len(images) < 20:
        return None
    return InputDomain.fit(images, getattr(learn.dls, "modality", None), getattr(learn.dls, "name", None))


@dataclass
class ModelFile:
    """What a model file holds, rebuilt: the model (eval mode, on the CPU), its classes, its
    preprocessing steps, the loss's activation (a key of :data:`dermlearn.losses.ACTIVATIONS`),
    the temperature, the training domain (or None) and the whole metadata."""

    model: nn.Module
    classes: list[str]
    steps: list[Step]
    activation: str
    temperature: float
    input_domain: InputDomain | None
    meta: dict[str, Any]


def read_export_file(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The metadata and weights of an :func:`export_learner` file (loaded weights-only).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not an export file, truncated or tampered.
    """
    state = safe_torch_load(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT or not isinstance(state.get("meta"), str):
        raise ValueError(f"{path} is not a dermlearn export file (use Learner.load for files written by Learner.save)")
    try:
        meta = json.loads(state["meta"])
    except ValueError as e:
        raise ValueError(f"{path}: damaged metadata ({type(e).__name__}: {e})") from e
    if not isinstance(meta, dict) or not isinstance(state.get("model"), dict):
        raise ValueError(f"{path}: damaged file (no metadata table or no weights)")
    return meta, state["model"]


def rebuild(meta: dict[str, Any], weights: dict[str, torch.Tensor], path: str | os.PathLike) -> ModelFile:
    """The model and its pipeline from a model file's metadata and weights (``path`` names
    the file in errors).

    Raises:
        ValueError: damaged metadata, or weights that do not fit.
    """
    try:
        arch, n_out, classes = meta["arch"], int(meta["n_out"]), list(meta["classes"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: damaged metadata ({type(e).__name__}: {e})") from e
    if len(classes) != n_out:
        raise ValueError(f"{path}: {len(classes)} classes in the metadata but the model has {n_out} outputs")
    model = create_model(arch, n_out, head=meta.get("head", "fastai"), stem=meta.get("stem", "imagenet"))
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise ValueError(f"{path}: the weights do not fit {arch} with {n_out} outputs: {str(e)[:300]}") from e
    model.eval()
    activation = meta.get("activation", "softmax")
    if activation == "sigmoid" and meta.get("format_version", 1) < 2:
        activation = "normalized_sigmoid"  # version 1 named every BCE model 'sigmoid': all were single-label
    if activation not in ACTIVATIONS:
        raise ValueError(f"{path}: damaged metadata (activation {activation!r}, expected one of {', '.join(ACTIVATIONS)})")
    temperature = meta.get("temperature", 1.0)  # files from before temperature scaling have none
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"{path}: damaged metadata (temperature {temperature!r}, expected a positive number)")
    try:
        steps = [step_from_spec(s) for s in meta.get("preprocessing", [])]
        domain = InputDomain.from_dict(meta["input_domain"]) if meta.get("input_domain") is not None else None
    except ValueError as e:
        raise ValueError(f"{path}: damaged metadata ({e})") from e
    return ModelFile(model, classes, steps, activation, float(temperature), domain, meta)
