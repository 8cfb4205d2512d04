"""Plots shared by the CLI and interpretation: confusion matrices."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["plot_confusion_matrix"]


def plot_confusion_matrix(cm: np.ndarray, classes: Sequence[str], normalize: bool = False, title: str | None = None, ax=None):
    """Draw a confusion matrix (rows actual, columns predicted) with counts in the cells.

    Args:
        cm: Counts, shape ``(C, C)``.
        classes: ``C`` class names.
        normalize: Show row-normalised rates (recall on the diagonal) instead of counts.
        title: Axes title.
        ax: Axes to draw on (a new figure otherwise).

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(classes):
        raise ValueError(f"cm must be ({len(classes)}, {len(classes)}) for {len(classes)} classes, got {cm.shape}")
    vals = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalize else cm
    if ax is None:
        size = max(4.0, 0.6 * len(classes) + 2)
        fig, ax = plt.subplots(figsize=(size, size))
    else:
        fig = ax.figure
    ax.imshow(vals, cmap="Blues", vmin=0)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    thresh = vals.max() / 2 if vals.size else 0
    for i in range(len(classes)):
        for j in range(len(classes)):
            txt = f"{vals[i, j]:.2f}" if normalize else str(int(vals[i, j]))
            ax.text(j, i, txt, ha="center", va="center", color="white" if vals[i, j] > thresh else "black", fontsize=8)
    ax.set_title(title or ("confusion matrix (row-normalised)" if normalize else "confusion matrix"))
    fig.tight_layout()
    return fig
