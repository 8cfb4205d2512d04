"""Crop and re-predict: predict, crop to where Grad-CAM of the top-1 class is high, predict
the crop, and average the two (the study's two-pass field-of-view inference)."""

from __future__ import annotations

import os

import torch
from PIL import Image, ImageOps
from torch import Tensor

from dermlearn.data.decode import IMAGE_SOURCES, load_image, presize_geometry, presize_image
from dermlearn.transforms._common import check_images
from dermlearn.transforms.saliency import check_region, crop_boxes, roi_box

__all__ = ["two_pass_predict"]

def two_pass_predict(learn, item: Tensor | str | os.PathLike | Image.Image, mode: str = "average", theta: float = 0.5, margin: float = 0.15,
                     source: Image.Image | Tensor | None = None, layer: torch.nn.Module | None = None, region: str = "all"):  # fmt: skip
    """Predict, crop to where Grad-CAM of the top-1 class is ``>= theta * max``, predict the
    crop, and average (``mode='average'``) or replace (``'replace'``) the probabilities.

    Without ``source`` the crop is cut from ``item`` itself and enlarged to its size, so the
    second pass sees the lesion bigger but with no more detail. With ``source``, the image
    ``item`` was made from at full resolution (by :func:`dermlearn.data.decode.presize_image`:
    shorter side resized to ``item``'s side, centre square kept), the box is mapped to
    ``source`` pixels and the crop is cut there and presized the same way: the closer
    field of view of the study (its P[blister] 0.547 -> 1.0), with the detail a phone photo
    has and a 128-px view of it does not. An image file or PIL image as ``item`` is both:
    decoded as the data pipeline does (:func:`dermlearn.data.decode.image_item`) for the first
    pass, and at full resolution as ``source``.

    Args:
        learn: A Learner (e.g. from :func:`dermlearn.load_learner`).
        item: One image as the dataset stores it ``(3, H, W)``, uint8 or float in [0, 1];
            or an image file or PIL image (then ``source`` must be None).
        mode: ``'average'`` or ``'replace'``.
        theta: Grad-CAM threshold as a fraction of its maximum, in (0, 1].
        margin: Growth of the box on each side, as a fraction of its size.
        source: Optional full-resolution image: a PIL image, or a tensor ``(3, H, W)``
            (uint8, or float in [0, 1]) in the same orientation as ``item``.
        layer: Grad-CAM layer (default: the architecture's, as in :meth:`Learner.explain`).
        region: Which pixels above the threshold the box holds: ``'all'`` (the study's) or
            ``'peak'``, the connected region of the map's maximum (see :func:`roi_box`).

    Returns:
        ``(probs, first, second, box)``: the final probabilities ``(C,)``, those of the full
        view and of the crop, and the crop box ``(x0, y0, x1, y1)`` (exclusive ends) in
        ``source`` pixels when ``source`` is given, else in ``item`` pixels.
    """
    if mode not in ("average", "replace"):
        raise ValueError(f"mode must be 'average' or 'replace', got {mode!r}")
    check_region(region)
    if isinstance(item, IMAGE_SOURCES):
        if source is not None:
            raise ValueError("pass source only with an item tensor: an image file or PIL image is its own source")
        # a file is decoded twice: reduced (JPEG draft), as the data pipeline does, and at full resolution
        source = ImageOps.exif_transpose(item) if isinstance(item, Image.Image) else load_image(item)
        item = learn.load_item(item)
    if not isinstance(item, Tensor) or item.ndim != 3:
        raise ValueError(f"two_pass_predict expects one image tensor (3, H, W), got {getattr(item, 'shape', type(item))}")
    if source is not None:
        source = _as_pil(source)
    ex = learn.explain(item, targets=("top1",), layer=layer, gbp=False)
    first = ex.probs[0]
    cam = ex.gradcam["top1"].maps[0].cpu()
    h, w = item.shape[-2:]
    cam = torch.nn.functional.interpolate(cam[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    box = roi_box(cam, theta, margin, region=region)
    if source is None:
        crop = crop_boxes(item[None], [box], size=max(h, w))[0]
    else:
        if h != w:
            raise ValueError(f"with source, item must be the square presize_image makes, got {h}x{w}")
        box = _box_in_source(box, h, *source.size)
        crop = presize_image(source.crop(box), h)
        if item.dtype != torch.uint8:
            crop = crop.to(item.dtype) / 255.0
    second = learn.predict(crop)[2]
    probs = (first + second) / 2 if mode == "average" else second
    return probs, first, second, box


def _as_pil(source: Image.Image | Tensor) -> Image.Image:
    """``source`` as an RGB PIL image; tensors ``(3, H, W)`` uint8 or float in [0, 1]."""
    if isinstance(source, Image.Image):
        return source.convert("RGB") if source.mode != "RGB" else source
    if isinstance(source, Tensor):
        if source.ndim != 3:
            raise ValueError(f"source must be one image (3, H, W), got shape {tuple(source.shape)}")
        check_images(source[None], "two_pass_predict (source)")
        u8 = source.detach().cpu()
        if u8.dtype != torch.uint8:
            u8 = (u8.float() * 255).round().to(torch.uint8)
        return Image.fromarray(u8.permute(1, 2, 0).contiguous().numpy())
    raise TypeError(f"source must be a PIL image or a tensor (3, H, W), got {type(source).__name__}")


def _box_in_source(box: tuple[int, int, int, int], size: int, w: int, h: int) -> tuple[int, int, int, int]:
    """A box in the pixels of ``presize_image(source, size)`` mapped to ``source`` (``w x h``),
    grown to whole pixels; integer arithmetic, so whole-number scales map exactly."""
    s = min(w, h)
    _, _, left, top = presize_geometry(w, h, size)
    x0, y0, x1, y1 = box
    return (max(0, (left + x0) * s // size), max(0, (top + y0) * s // size),
            min(w, -(-(left + x1) * s // size)), min(h, -(-(top + y1) * s // size)))  # fmt: skip
