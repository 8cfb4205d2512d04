"""Safe, portable model files: ``learn.export(path)`` and :func:`load_learner`.

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
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .dataloaders import DataLoaders, Normalize
from .io import atomic_torch_save, safe_torch_load
from .losses import activation_name

__all__ = ["FORMAT", "export_learner", "load_learner"]

FORMAT = "dermlearn-export"
VERSION = 2  # 2: 'activation' tells single-label BCE models ('normalized_sigmoid') from multi-label ones


_REBUILDABLE = {  # class name -> constructor arguments kept in the metadata
    "AdjustGamma": ("gamma",),
    "AutoGamma": ("target",),
    "CorrectIllumination": ("kernel_frac", "work_size"),
    "ShadesOfGray": ("p", "saturated", "border"),
    "RemoveHair": ("kernel", "threshold", "radius"),
    "CropVignette": ("method", "shrink"),
}


def _describe_tfms(tfms) -> list[dict[str, Any]]:
    steps = []
    for t in tfms:
        if type(t).__name__ in _REBUILDABLE:
            steps.append({"name": type(t).__name__, **{k: getattr(t, k) for k in _REBUILDABLE[type(t).__name__]}})
        elif isinstance(t, Normalize):
            steps.append({"name": "normalize", "mean": t.mean.flatten().tolist(), "std": t.std.flatten().tolist()})
        elif type(t).__name__ == "Resize" and hasattr(t, "size"):
            steps.append({"name": "resize", "size": int(t.size)})
        else:
            raise TypeError(f"cannot export the preprocessing step {type(t).__name__}: only {sorted(_REBUILDABLE)}, "
                            "Resize and Normalize can be rebuilt from a model file")  # fmt: skip
    return steps


def _build_tfms(steps: list[dict[str, Any]]) -> list[nn.Module]:
    from . import transforms
    from .data.augment import Resize

    out: list[nn.Module] = []
    for s in steps:
        if s["name"] in _REBUILDABLE:
            out.append(getattr(transforms, s["name"])(**{k: s[k] for k in _REBUILDABLE[s["name"]]}))
        elif s["name"] == "normalize":
            out.append(Normalize(s["mean"], s["std"]))
        elif s["name"] == "resize":
            out.append(Resize(int(s["size"])))
        else:
            raise ValueError(f"cannot rebuild preprocessing step {s['name']!r} from an export file")
    return out


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
    from . import __version__
    from .models import DermModel

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
    state = {"format": FORMAT, "meta": json.dumps(meta), "model": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    return atomic_torch_save(state, path)


def _input_domain(learn):
    """The training domain of ``learn`` (:class:`~dermlearn.domain.InputDomain`): what a loaded
    model already carries, else statistics of the training loader's stored uint8 images;
    None for other loaders."""
    from .domain import InputDomain

    if learn.input_domain is not None:
        return learn.input_domain
    images = getattr(getattr(learn.dls.train, "dataset", None), "images", None)
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4 or len(images) < 20:
        return None
    return InputDomain.fit(images, getattr(learn.dls, "modality", None), getattr(learn.dls, "name", None))


def load_learner(path: str | os.PathLike, device: str | torch.device | None = None):
    """Rebuild an inference Learner from an export file (no code runs from the file).

    Returns:
        A Learner with the model in eval mode, ``dls.vocab`` and the preprocessing as
        ``dls.batch_tfms``; ``learn.meta`` holds the metadata. Ready for ``predict``,
        ``get_preds(dl=...)``, ``explain``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a dermlearn export, truncated, tampered, or weights that do not fit.
    """
    from .learner import Learner
    from .losses import ACTIVATIONS, BCEWithLogitsOneHot, CrossEntropy
    from .models import create_model

    state = safe_torch_load(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT or not isinstance(state.get("meta"), str):
        raise ValueError(f"{path} is not a dermlearn export file (use Learner.load for files written by Learner.save)")
    try:
        meta = json.loads(state["meta"])
        arch, n_out, classes = meta["arch"], int(meta["n_out"]), list(meta["classes"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: damaged metadata ({type(e).__name__}: {e})") from e
    if len(classes) != n_out:
        raise ValueError(f"{path}: {len(classes)} classes in the metadata but the model has {n_out} outputs")
    model = create_model(arch, n_out, head=meta.get("head", "fastai"), stem=meta.get("stem", "imagenet"))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise ValueError(f"{path}: the weights do not fit {arch} with {n_out} outputs: {str(e)[:300]}") from e
    activation = meta.get("activation", "softmax")
    if activation == "sigmoid" and meta.get("format_version", 1) < 2:
        activation = "normalized_sigmoid"  # version 1 named every BCE model 'sigmoid': all were single-label
    if activation not in ACTIVATIONS:
        raise ValueError(f"{path}: damaged metadata (activation {activation!r}, expected one of {', '.join(ACTIVATIONS)})")
    loss = CrossEntropy() if activation == "softmax" else BCEWithLogitsOneHot(multi_label=activation == "sigmoid")
    dls = DataLoaders([], None, batch_tfms=_build_tfms(meta.get("preprocessing", [])), vocab=classes)
    learn = Learner(dls, model, loss_func=loss, device=device, progress=False)
    temperature = meta.get("temperature", 1.0)  # files from before temperature scaling have none
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"{path}: damaged metadata (temperature {temperature!r}, expected a positive number)")
    learn.temperature = float(temperature)
    if meta.get("input_domain") is not None:
        from .domain import InputDomain

        try:
            learn.input_domain = InputDomain.from_dict(meta["input_domain"])
        except ValueError as e:
            raise ValueError(f"{path}: damaged metadata ({e})") from e
    learn.model.eval()
    learn.meta = meta
    return learn
