"""Field of view: crop away a dermoscope's dark vignette or pale rim, crop to the lesion (from a
mask or an attribution map), and predict twice ("crop and re-predict").

The study found field-of-view selection turned P[blister] 0.547 into 1.0: a small lesion in
a wide view leaves the network looking at skin, clothing or background.
"""

from __future__ import annotations

import hashlib
import os

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor
from torchvision.ops import roi_align

from ..data.decode import IMAGE_SOURCES, load_image, presize_geometry, presize_image
from ._common import check_images, like_input, luminance, to_unit
from .circle import Circle, fit_circle
from .rim import detect_rim

__all__ = ["Circle", "CropVignette", "crop_boxes", "crop_vignette", "detect_vignette", "field_boxes", "roi_box",
           "two_pass_predict", "vignette_box"]  # fmt: skip


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


class CropVignette(torch.nn.Module):
    """Crop dermoscope vignettes away (:func:`crop_vignette`), as a preprocessing step:
    ``DermData.dls(tfms=[CropVignette()])`` applies it to every batch, exports it with the
    model, and :meth:`Learner.predict` applies it too. Photos without a vignette (clinical
    photos) pass unchanged.

    The stored images are the same every epoch, so the module remembers each image's box by
    a digest of its pixels (up to ``max_remembered`` images): after the first epoch a batch
    costs a copy to the CPU and a hash per image (about 0.1 ms at 160 px) instead of a
    detection (2 ms). The memory is not part of the module's state or of the model file.
    """

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


def _check_region(region: str) -> None:
    if region not in ("all", "peak"):
        raise ValueError(f"region must be 'all' or 'peak', got {region!r}")


def roi_box(saliency: Tensor, theta: float = 0.5, margin: float = 0.15, aspect: float = 1.0,
            region: str = "all") -> tuple[int, int, int, int]:  # fmt: skip
    """Box around the region where ``saliency >= theta * max``, grown by ``margin`` of its
    size on each side, widened to the aspect ratio ``aspect`` (width / height), shifted and
    clipped to stay inside the image.

    Args:
        saliency: ``(H, W)``: a lesion mask (bool/0-1) or a Grad-CAM / saliency map.
        theta: Threshold as a fraction of the map's maximum, in (0, 1].
        margin: Growth of the box on each side, as a fraction of its size, at least 0.
        aspect: Width / height of the box, above 0.
        region: ``'all'`` boxes every pixel above the threshold (the study's rule);
            ``'peak'`` only the 8-connected region holding the maximum, so a second hot
            spot elsewhere (a ruler, a second lesion, a bright corner) does not stretch
            the box over the photo.

    Returns:
        ``(x0, y0, x1, y1)`` (x1, y1 exclusive); the whole image when the map is empty.
    """
    if saliency.ndim != 2:
        raise ValueError(f"roi_box expects a map (H, W), got shape {tuple(saliency.shape)}")
    if not 0.0 < theta <= 1.0:
        raise ValueError(f"theta must be in (0, 1], got {theta}")
    _check_region(region)
    if not margin >= 0:
        raise ValueError(f"margin must be at least 0, got {margin}")
    if not aspect > 0:
        raise ValueError(f"aspect must be above 0, got {aspect}")
    h, w = saliency.shape
    m = saliency.detach().float().cpu()
    if not torch.isfinite(m).all():
        raise ValueError("roi_box got a map with NaN or infinite values")
    peak = float(m.max())
    if peak <= 0:
        return 0, 0, w, h
    above = m >= theta * peak
    if region == "peak":
        _, labels = cv2.connectedComponents(above.numpy().astype(np.uint8), connectivity=8)
        at_peak = int(torch.argmax(m))
        labels = torch.from_numpy(labels)
        above = labels == labels.reshape(-1)[at_peak]
    ys, xs = torch.nonzero(above, as_tuple=True)
    x0, x1, y0, y1 = float(xs.min()), float(xs.max()) + 1, float(ys.min()), float(ys.max()) + 1
    bw, bh = x1 - x0, y1 - y0
    x0, x1, y0, y1 = x0 - margin * bw, x1 + margin * bw, y0 - margin * bh, y1 + margin * bh
    bw, bh = x1 - x0, y1 - y0
    if bw / bh < aspect:
        grow = aspect * bh - bw
        x0, x1 = x0 - grow / 2, x1 + grow / 2
    else:
        grow = bw / aspect - bh
        y0, y1 = y0 - grow / 2, y1 + grow / 2
    bw, bh = min(x1 - x0, w), min(y1 - y0, h)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    x0 = min(max(cx - bw / 2, 0), w - bw)
    y0 = min(max(cy - bh / 2, 0), h - bh)
    return int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x0 + bw)), int(np.ceil(y0 + bh))


def crop_boxes(x: Tensor, boxes: Tensor | list[tuple[float, float, float, float]], size: int | tuple[int, int]) -> Tensor:
    """Crop each image to its box and resize to ``size x size`` (or ``(height, width)``) in
    one batched op (``roi_align``, bilinear). ``boxes``: ``(B, 4)`` as ``(x0, y0, x1, y1)``
    in pixels. Same dtype as ``x``."""
    check_images(x, "crop_boxes")
    b = torch.as_tensor(boxes, dtype=torch.float32, device=x.device).view(-1, 4)
    if b.shape[0] != x.shape[0]:
        raise ValueError(f"{b.shape[0]} boxes for {x.shape[0]} images")
    oh, ow = (size, size) if isinstance(size, int) else size
    rois = torch.cat([torch.arange(len(b), device=x.device, dtype=torch.float32)[:, None], b], 1)
    scale = max((b[:, 2] - b[:, 0]).max().item() / ow, (b[:, 3] - b[:, 1]).max().item() / oh)
    ratio = max(1, int(np.ceil(scale)))
    out = roi_align(to_unit(x).float(), rois, output_size=(oh, ow), spatial_scale=1.0, sampling_ratio=ratio, aligned=True)
    return like_input(out.clamp(0, 1), x)


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
    _check_region(region)
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
