"""Grad-CAM drawn on the user's photo: the figure ``dermlearn predict --heatmaps`` writes.

The model reads a square (the photo's centre square, shorter side resized to the input
size, as :func:`dermlearn.data.decode.presize_image` takes it). A map on that square is put
back on the photo in its own pixels and aspect, beside the untouched photo, so that a
reader sees where on the lesion the model looked and what it did not see at all (outside
the square, outlined).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image
from torch import Tensor

from dermlearn.data.decode import presize_geometry

__all__ = ["model_view_box", "plot_photo_heatmap"]


def model_view_box(width: int, height: int, size: int) -> tuple[float, float, float, float]:
    """The square a model of input side ``size`` sees of a ``width x height`` photo, in the
    photo's pixels: ``(x0, y0, x1, y1)``, edges as floats (the centre square, exactly as
    :func:`~dermlearn.data.decode.presize_image` crops it after resizing)."""
    nw, nh, left, top = presize_geometry(width, height, size)
    sx, sy = width / nw, height / nh
    return left * sx, top * sy, (left + size) * sx, (top + size) * sy


def plot_photo_heatmap(photo: Image.Image, maps: Sequence[tuple[str, Tensor]], title: str,
                       max_side: int = 1600, alpha: float = 0.45):  # fmt: skip
    """The photo beside one Grad-CAM panel per map, on a shared colour bar.

    Args:
        photo: The upright RGB photo at its own resolution (e.g. from
            :func:`~dermlearn.data.decode.load_image`).
        maps: ``(panel title, map)`` pairs; each map is ``(S, S)`` in [0, 1] on the model's
            input square (e.g. ``Attribution.normalized()[i]``), e.g. the predicted and the
            runner-up class with their probabilities in the titles.
        title: The figure's title (the file name).
        max_side: The photo is drawn at most this many pixels on its longer side (enough for
            the figure's resolution; a 3008x2000 photo is not drawn at full size).
        alpha: Opacity of the map over the photo, in [0, 1].

    Returns:
        The matplotlib Figure: axes 0 the photo, then one axes per map, then the colour bar.

    Raises:
        ValueError: no map, a map that is not square, or ``alpha`` outside [0, 1].
    """
    import matplotlib.pyplot as plt

    if not maps:
        raise ValueError("plot_photo_heatmap needs at least one map")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    for name, m in maps:
        if m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise ValueError(f"map {name!r} must be a square (S, S) map on the model's input, got shape {tuple(m.shape)}")
    w, h = photo.size
    x0, y0, x1, y1 = model_view_box(w, h, int(maps[0][1].shape[0]))
    shown = photo.convert("RGB")
    if max(w, h) > max_side:
        shown = shown.resize((max(1, round(w * max_side / max(w, h))), max(1, round(h * max_side / max(w, h)))), Image.BILINEAR)
    pixels = np.asarray(shown)
    extent = (0, w, h, 0)  # the photo's own pixel coordinates whatever the drawn resolution
    panel_w = 3.6 * w / max(w, h) + 0.4
    fig, axs = plt.subplots(1, 1 + len(maps), figsize=(panel_w * (1 + len(maps)) + 0.8, 3.6 * h / max(w, h) + 1.0),
                            layout="constrained", squeeze=False)  # fmt: skip
    axs = axs[0]
    axs[0].imshow(pixels, extent=extent)
    axs[0].set_title(f"photo {w}x{h}", fontsize=9)
    crop = (x1 - x0) < w - 0.5 or (y1 - y0) < h - 0.5
    image = None
    for ax, (name, m) in zip(axs[1:], maps):
        ax.imshow(pixels, extent=extent)
        image = ax.imshow(m.detach().float().cpu().numpy(), cmap="jet", alpha=alpha, vmin=0, vmax=1,
                          extent=(x0, x1, y1, y0), interpolation="bilinear")  # fmt: skip
        if crop:
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="white", linestyle="--", linewidth=1))
        ax.set_title(name, fontsize=9)
    for ax in axs:
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(image, ax=list(axs[1:]), shrink=0.85)
    bar.solids.set_alpha(1.0)  # the scale itself opaque, not blended as over the photo
    bar.set_label("Grad-CAM, 0 to the map's maximum", fontsize=8)
    fig.suptitle(title + ("\n(dashed: the square the model sees)" if crop else ""), fontsize=10)
    return fig
