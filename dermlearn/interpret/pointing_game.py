"""The pointing game (Zhang et al., "Top-down neural attention by excitation backprop",
ECCV 2016): a saliency map scores a hit when its maximum lies on the annotated object, here
the lesion mask, within a tolerance of a few pixels. The hit rate over images measures how
often a map points at the lesion; ties at the maximum count as a hit when any of them does."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["pointing_hits"]


def pointing_hits(maps: Tensor, masks: Tensor, tolerance: int = 0) -> Tensor:
    """Whether each map's maximum lies on its mask.

    Args:
        maps: Saliency maps ``(N, H, W)`` (e.g. Grad-CAM in the input's resolution), any
            scale; only the location of the maximum counts.
        masks: Lesion masks ``(N, H, W)``, bool or {0, 1}, aligned with the maps.
        tolerance: Pixels by which the mask is grown (a square of side ``2 * tolerance + 1``)
            before the test; Zhang et al. use 15 px at 224 px inputs.

    Returns:
        ``(N,)`` float: 1.0 for a hit, 0.0 for a miss, NaN where the answer is undefined: an
        empty mask, or a map without a maximum (constant: Grad-CAM of a class with no
        positive evidence is all zeros).
    """
    if maps.ndim != 3 or masks.shape != maps.shape:
        raise ValueError(f"maps and masks must both be (N, H, W), got {tuple(maps.shape)} and {tuple(masks.shape)}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 pixels, got {tolerance}")
    masks = masks.bool()
    if tolerance:
        masks = F.max_pool2d(masks[:, None].float(), 2 * tolerance + 1, stride=1, padding=tolerance)[:, 0].bool()
    maps = maps.detach().float()
    flat = maps.flatten(1)
    top = flat.max(dim=1, keepdim=True).values
    at_max = (flat == top).view_as(maps)
    hits = (at_max & masks).flatten(1).any(dim=1).float()
    undefined = ~masks.flatten(1).any(dim=1) | (flat.min(dim=1).values == top[:, 0])
    return torch.where(undefined, torch.full_like(hits, float("nan")), hits)
