"""One image in, a class out: :func:`predict` (``learn.predict``), with the decoding of image
files (:func:`load_item`), the model's input size (:func:`input_size`) and the training-domain
check (:func:`out_of_domain`)."""

from __future__ import annotations

import os
import warnings

import torch
from PIL import Image
from torch import Tensor

from dermlearn.data.decode import IMAGE_SOURCES, image_item
from dermlearn.data.domain import OutOfDomainWarning, photo_thumbnail
from dermlearn.losses import decodes_of
from dermlearn.transforms.resize import Resize

__all__ = ["domain_reasons", "input_size", "load_item", "out_of_domain", "predict"]


def input_size(learn) -> int | None:
    """Side of the square ``learn``'s model reads: the size of the preprocessing's resize step
    (``dls.batch_tfms``), else a loaded model file's ``input_size``, else the side of the
    stored images when they are square (data without a resize step); None when none says."""
    size = next((int(t.size) for t in learn.dls.batch_tfms if isinstance(t, Resize)), None)
    if size is None:
        size = learn.meta.get("input_size")
    for loader in (learn.dls.valid, learn.dls.train) if size is None else ():
        dataset = getattr(loader, "dataset", None)
        if dataset is not None and len(dataset) > 0:
            x = dataset[0][0]
            if isinstance(x, Tensor) and x.ndim == 3 and x.shape[-1] == x.shape[-2]:
                return int(x.shape[-1])
    return size


def load_item(learn, image: str | os.PathLike | Image.Image) -> Tensor:
    """An image file or PIL image as ``learn``'s input item, decoded as the data pipeline
    decodes files (:func:`dermlearn.data.decode.image_item`): uint8 ``(3, S, S)`` with ``S`` =
    :func:`input_size`.

    Raises:
        UnreadableImage: the file cannot be decoded.
        ValueError: the input size is unknown (no resize step, model file or stored images
            to read it from).
    """
    size = input_size(learn)
    if size is None:
        raise ValueError("decoding an image file needs the model's input size, and neither the preprocessing "
                         "(no resize step) nor the data says it: pass the image as a tensor (3, H, W)")  # fmt: skip
    return image_item(image, size)


def out_of_domain(learn, item: Tensor, source: str | os.PathLike | Image.Image | None = None) -> list[str]:
    """Why ``item`` looks unlike the training images of a loaded model file (see
    :mod:`dermlearn.data.domain`); empty when nothing is found or the file records no domain.

    Args:
        learn: The Learner (its ``input_domain``).
        item: The model's input item, ``(3, S, S)``.
        source: The photo it came from (file or PIL image), for the dermoscope check of a
            model trained on clinical photos.
    """
    return domain_reasons(learn.input_domain, item, source)


def domain_reasons(domain, item: Tensor, source: str | os.PathLike | Image.Image | None = None) -> list[str]:
    """:func:`out_of_domain` for an :class:`~dermlearn.data.domain.InputDomain` (or None):
    what a worker process holds, without the Learner."""
    if domain is None:
        return []
    photo = photo_thumbnail(source) if source is not None and domain.modality == "clinical" else None
    return domain.check(item, photo)


def predict(learn, item: Tensor | str | os.PathLike | Image.Image, check_domain: bool = True) -> tuple[str | int, int, Tensor]:
    """Predict one image; see :meth:`dermlearn.Learner.predict`.

    Returns:
        ``(label, index, probs)``: the class name (or index when the data has no vocab), its
        index, and the probabilities ``(C,)`` on the CPU.
    """
    source = item if isinstance(item, IMAGE_SOURCES) else None
    if source is not None:
        item = load_item(learn, source)
    if not isinstance(item, Tensor) or item.ndim != 3:
        raise ValueError(f"predict expects one image tensor (C, H, W), an image file or a PIL image, got {getattr(item, 'shape', type(item).__name__)}")
    reasons = out_of_domain(learn, item, source) if check_domain else []
    if reasons:
        name = f"{source}" if isinstance(source, (str, os.PathLike)) else "the image"
        warnings.warn(f"{name} looks out of the model's training domain ({learn.input_domain.describe()}): "
                      + "; ".join(reasons) + ". Its prediction may mean nothing.", OutOfDomainWarning, stacklevel=3)  # fmt: skip
    model = learn.model
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = learn.dls.apply(item[None].to(learn.device), training=False)
            probs = learn.activation(model(x).float())[0].cpu()
    finally:
        model.train(was_training)
    idx = int(decodes_of(learn.loss_func)(probs[None])[0])
    label = learn.dls.vocab[idx] if learn.dls.vocab is not None else idx
    return label, idx, probs
