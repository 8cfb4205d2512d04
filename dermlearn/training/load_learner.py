"""A Learner from a model file: :func:`load_learner`."""

from __future__ import annotations

import os

import torch

from dermlearn.data.dataloaders import DataLoaders
from dermlearn.losses import BCEWithLogitsOneHot, CrossEntropy
from dermlearn.modelfile.read import read_model_file

from .learner import Learner

__all__ = ["load_learner"]


def load_learner(path: str | os.PathLike, device: str | torch.device | None = None) -> Learner:
    """Rebuild an inference Learner from a model file (no code runs from the file): an export
    file (``learn.export``), a folder or ``.safetensors`` file of ``learn.save_pretrained``, or
    ``hf://owner/name[@revision]`` (extra ``dermlearn[hub]``; see
    :mod:`dermlearn.modelfile.pretrained`).

    Returns:
        A Learner with the model in eval mode, ``dls.vocab`` and the preprocessing as
        ``dls.batch_tfms``; ``learn.meta`` holds the metadata, ``learn.temperature`` and
        ``learn.input_domain`` what the file recorded. Ready for ``predict``,
        ``get_preds(dl=...)``, ``explain``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a dermlearn model file, truncated, tampered, or weights that do not fit.
    """
    f = read_model_file(path)
    loss = CrossEntropy() if f.activation == "softmax" else BCEWithLogitsOneHot(multi_label=f.activation == "sigmoid")
    dls = DataLoaders([], None, batch_tfms=f.steps, vocab=f.classes)
    learn = Learner(dls, f.model, loss_func=loss, device=device, progress=False)
    learn.temperature = f.temperature
    learn.input_domain = f.input_domain
    learn.model.eval()
    learn.meta = f.meta
    return learn
