"""Crop to the lesion: a box around where a lesion mask or an attribution map is high
(:func:`roi_box`), and a batched crop-and-resize of boxes (:func:`crop_boxes`).

The study found field-of-view selection turned P[blister] 0.547 into 1.0: a small lesion in
a wide view leaves the network looking at skin, clothing or background.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor
from torchvision.ops import roi_align

from ._common import check_images, like_input, to_unit

__all__ = ["check_region", "crop_boxes", "roi_box"]

def check_region(region: str) -> None:
    """Raise a ValueError naming `region` unless it is 'all' or 'peak' (see :func:`roi_box`)."""
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
    check_region(region)
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
