"""A dermoscope's field of view: find its dark vignette or pale rim (:func:`detect_vignette`),
and crop every image to the circle's inscribed box (:func:`crop_vignette`, :class:`CropVignette`).

Crop to the lesion itself: :mod:`dermlearn.transforms.saliency`; crop and re-predict:
:mod:`dermlearn.inference.two_pass`.
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import torch
from torch import Tensor

from ._common import check_images, luminance, to_unit
from .circle import Circle, fit_circle
from .rim import detect_rim
from .saliency import crop_boxes
from .step import Step

__all__ = ["Circle", "CropVignette", "crop_vignette", "detect_vignette", "field_boxes", "vignette_box"]


def detect_vignette(image: Tensor, method: str = "auto", work_size: int = 256, min_area: float = 0.03,
                    max_residual: float = 0.03) -> Circle | None:  # fmt: skip
    """Find the circular edge of a dermoscope's field of view, or None when there is none.

    ``method='dark'`` finds a dark vignette (below); ``'rim'`` the edge of a pale rim that
    does not darken the image (:func:`dermlearn.transforms.rim.detect_rim`: the chroma step
    where the skin ends; about 0.2-0.4 s per image); ``'auto'`` (default) tries ``'dark'``
    first and ``'rim'`` when it finds nothing. ``Circle.source`` says which one answered.

    Dark vignettes:
    Otsu's threshold splits the luminance; the dark pixels connected to the image border
    are the vignette candidate (a dark lesion inside the field is not connected to it). A
    circle is fitted to the boundary between the candidate and the field. It is accepted
    when the candidate is dark (median luminance at most 0.25, and at most half the
    field's), covers at least ``min_area`` of the image, the boundary points lie
    on the circle (mean distance under ``max_residual * r``), at least 90% of the
    candidate lies outside the circle, and the candidate fills at least 70% of the image
    outside the circle (dark clothing in one corner does not).

    Args:
        image: One image ``(3, H, W)``, uint8 or float in [0, 1].
        method: ``'auto'``, ``'dark'`` or ``'rim'``.
        work_size: Longer side of the image the dark detector works on.
        min_area: Smallest share of the image a dark vignette covers.
        max_residual: Largest mean distance of the dark boundary from its circle, as a
            fraction of the radius.

    Returns:
        A :class:`Circle` in ``image`` pixels, or None.
    """
    if method not in METHODS:
        raise ValueError(f"method must be 'auto', 'dark' or 'rim', got {method!r}")
    if image.ndim != 3:
        raise ValueError(f"detect_vignette expects one image (3, H, W), got shape {tuple(image.shape)}")
    check_images(image[None], "detect_vignette")
    if method == "rim":
        return detect_rim(image)
    found = _detect_dark(image, work_size, min_area, max_residual)
    if found is None and method == "auto":
        return detect_rim(image)
    return found


def _detect_dark(image: Tensor, work_size: int, min_area: float, max_residual: float) -> Circle | None:
    """The dark-vignette detector of :func:`detect_vignette`."""
    h, w = image.shape[-2:]
    s = work_size / max(h, w)
    y = luminance(to_unit(image[None]).float())[0, 0]
    small = torch.nn.functional.interpolate(y[None, None], size=(max(8, round(h * s)), max(8, round(w * s))), mode="area")[0, 0]
    g = (small.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    t, dark = cv2.threshold(g, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    n, lab = cv2.connectedComponents(dark.astype(np.uint8), connectivity=8)
    border_labels = set(np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))) - {0}
    cand = np.isin(lab, list(border_labels)) if border_labels else np.zeros_like(dark, dtype=bool)
    if cand.mean() < min_area:
        return None
    field_ = ~cand
    dark_level = float(np.median(g[cand]))
    if dark_level > 0.25 * 255 or dark_level > 0.5 * float(np.median(g[field_])):
        return None  # a shadow, dark clothing or tanned skin, not a dermoscope's black border
    edge = field_ & (cv2.dilate(cand.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
    hh, ww = g.shape
    inner = np.zeros_like(edge)
    inner[1:-1, 1:-1] = True  # the image frame itself is not part of the circle
    ys, xs = np.nonzero(edge & inner)
    if len(xs) < 20:
        return None
    cx, cy, r = fit_circle(xs.astype(np.float64) + 0.5, ys.astype(np.float64) + 0.5)
    if r <= 0 or np.abs(np.hypot(xs + 0.5 - cx, ys + 0.5 - cy) - r).mean() > max_residual * r:
        return None
    yy, xx = np.mgrid[0:hh, 0:ww]
    outside = np.hypot(xx + 0.5 - cx, yy + 0.5 - cy) > r
    if outside[cand].mean() < 0.9 or (cand & outside).sum() < 0.7 * outside.sum():
        return None  # the dark region must lie outside the circle, and fill most of what lies outside
    return Circle(cx / s, cy / s, r / s)


def vignette_box(circle: Circle, h: int, w: int, shrink: float = 0.98) -> tuple[int, int, int, int]:
    """The square inscribed in the (slightly shrunk) circle, clipped to the image:
    ``(x0, y0, x1, y1)``."""
    half = circle.r * shrink / np.sqrt(2)
    x0, x1 = max(0, int(np.ceil(circle.cx - half))), min(w, int(np.floor(circle.cx + half)))
    y0, y1 = max(0, int(np.ceil(circle.cy - half))), min(h, int(np.floor(circle.cy + half)))
    return x0, y0, x1, y1


METHODS = ("auto", "dark", "rim")


def _check_field_args(method: str, shrink: float) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be 'auto', 'dark' or 'rim', got {method!r}")
    if not 0.0 < shrink <= 1.0:
        raise ValueError(f"shrink must be in (0, 1], got {shrink}")


def field_boxes(x: Tensor, method: str = "dark", shrink: float = 0.98) -> list[tuple[float, float, float, float] | None]:
    """For each image, the largest box of the image's own aspect ratio centred in its
    dermoscope field (:func:`detect_vignette`, the circle shrunk by ``shrink``) and inside the
    image: ``(x0, y0, x1, y1)`` in pixels (floats), or None where no field was found.

    Where the circle leaves the image (a partial vignette) the box is the part of the circle's
    inscribed box that lies in the image, narrowed to the image's aspect ratio around its
    middle, so every corner lies in the field.

    Args:
        x: Images ``(B, 3, H, W)``, uint8 or float in [0, 1], on any device (detection runs on
            the CPU).
        method: ``'dark'`` (default: 1-3 ms an image), ``'rim'`` or ``'auto'``, as in
            :func:`detect_vignette`.
        shrink: Fraction of the radius kept, in (0, 1].
    """
    check_images(x, "field_boxes")
    _check_field_args(method, shrink)
    h, w = x.shape[-2:]
    k = w / h
    boxes: list[tuple[float, float, float, float] | None] = []
    for img in x.detach().cpu():
        c = detect_vignette(img, method=method)
        if c is None:
            boxes.append(None)
            continue
        r = c.r * shrink
        hw, hh = r * k / np.hypot(k, 1.0), r / np.hypot(k, 1.0)  # the inscribed box of aspect k
        x0, x1 = max(0.0, c.cx - hw), min(float(w), c.cx + hw)
        y0, y1 = max(0.0, c.cy - hh), min(float(h), c.cy + hh)
        if x1 - x0 <= 1 or y1 - y0 <= 1:
            boxes.append(None)
            continue
        bw, bh = min(x1 - x0, (y1 - y0) * k), min(y1 - y0, (x1 - x0) / k)
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        boxes.append((float(mx - bw / 2), float(my - bh / 2), float(mx + bw / 2), float(my + bh / 2)))
    return boxes


def _crop_found(x: Tensor, boxes: list[tuple[float, float, float, float] | None]) -> Tensor:
    """``x`` with each image that has a box cropped to it and resized back to ``H x W``."""
    found = [i for i, b in enumerate(boxes) if b is not None]
    if not found:
        return x
    out = x.clone()
    out[found] = crop_boxes(x[found], [boxes[i] for i in found], tuple(x.shape[-2:]))
    return out


def crop_vignette(x: Tensor, method: str = "dark", shrink: float = 0.98) -> Tensor:
    """Crop each image to its dermoscope field (:func:`field_boxes`) and resize it back to
    ``H x W`` (bilinear, ``roi_align``); images without a field are returned unchanged, bit
    for bit.

    Args:
        x: Images ``(B, 3, H, W)``, uint8 or float in [0, 1].
        method: ``'dark'``, ``'rim'`` or ``'auto'`` (see :func:`detect_vignette`).
        shrink: Fraction of the field's radius kept, in (0, 1].

    Returns:
        Same shape, dtype and device as ``x``.
    """
    return _crop_found(x, field_boxes(x, method, shrink))


_UNSEEN = (-1.0, -1.0, -1.0, -1.0)  # a box no image has: "not detected yet"


def _digest(img: Tensor) -> bytes:
    """A digest of one CPU image's shape, dtype and pixels."""
    h = hashlib.blake2b(f"{tuple(img.shape)}{img.dtype}".encode(), digest_size=16)
    h.update(img.contiguous().view(torch.uint8).numpy().tobytes())
    return h.digest()


class CropVignette(Step):
    """Crop dermoscope vignettes away (:func:`crop_vignette`), as a preprocessing step:
    ``DermData.dls(tfms=[CropVignette()])`` applies it to every batch, exports it with the
    model, and :meth:`Learner.predict` applies it too. Photos without a vignette (clinical
    photos) pass unchanged.

    The stored images are the same every epoch, so the module remembers each image's box by
    a digest of its pixels (up to ``max_remembered`` images): after the first epoch a batch
    costs a copy to the CPU and a hash per image (about 0.1 ms at 160 px) instead of a
    detection (2 ms). The memory is not part of the module's state or of the model file.
    """

    export_args = ("method", "shrink")
    cli_name = "vignette"

    def __init__(self, method: str = "dark", shrink: float = 0.98, max_remembered: int = 200_000) -> None:
        super().__init__()
        _check_field_args(method, shrink)
        self.method, self.shrink, self.max_remembered = method, shrink, max_remembered
        self._boxes: dict[bytes, tuple[float, float, float, float] | None] = {}

    def forward(self, x: Tensor) -> Tensor:
        check_images(x, "CropVignette")
        cpu = x.detach().cpu()  # OpenCV detects on the CPU: one copy per batch
        keys = [_digest(img) for img in cpu]
        boxes = [self._boxes.get(k, _UNSEEN) for k in keys]
        unseen = [i for i, b in enumerate(boxes) if b is _UNSEEN]
        if unseen:
            for i, b in zip(unseen, field_boxes(cpu[unseen], self.method, self.shrink)):
                boxes[i] = b
                if len(self._boxes) < self.max_remembered:
                    self._boxes[keys[i]] = b
        return _crop_found(x, boxes)

    def extra_repr(self) -> str:
        return f"method={self.method!r}, shrink={self.shrink}"
