"""Read any model file: :func:`read_model_file`."""

from __future__ import annotations

import os

from .export import ModelFile, read_export_file, rebuild
from .pretrained import is_pretrained, read_pretrained

__all__ = ["read_model_file"]


def read_model_file(path: str | os.PathLike) -> ModelFile:
    """Read and check a model file (no code runs from it): an export file
    (:func:`~dermlearn.modelfile.export.export_learner`), or a folder, ``.safetensors`` file
    or ``hf://owner/name`` written by :func:`~dermlearn.modelfile.pretrained.save_pretrained`.

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: not a dermlearn model file, truncated, tampered, or weights that do not fit.
    """
    meta, weights = read_pretrained(path) if is_pretrained(path) else read_export_file(path)
    return rebuild(meta, weights, path)
