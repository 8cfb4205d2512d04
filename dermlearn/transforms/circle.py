"""A circle in image coordinates, and a least-squares fit through points on it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Circle", "fit_circle"]


@dataclass
class Circle:
    """A circle in pixel coordinates of the image it was detected on (x to the right, y down,
    pixel centres at ``i + 0.5``). ``source`` names the detector that found it: ``'dark'``
    (a dark vignette) or ``'rim'`` (the edge of a pale dermoscope rim)."""

    cx: float
    cy: float
    r: float
    source: str = "dark"


def fit_circle(xs: np.ndarray, ys: np.ndarray) -> tuple[float, float, float]:
    """Least-squares (Kasa) circle through points ``(xs[i], ys[i])``; works on partial arcs.

    Returns:
        ``(cx, cy, r)``.
    """
    a = np.stack([xs, ys, np.ones_like(xs)], 1)
    b = xs**2 + ys**2
    (c0, c1, c2), *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = c0 / 2, c1 / 2
    return float(cx), float(cy), float(np.sqrt(max(c2 + cx**2 + cy**2, 0.0)))
