"""Plots shared by the CLI and interpretation: confusion matrices, ROC curves, reliability diagrams."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["plot_confusion_matrix", "plot_reliability", "plot_roc_curves"]


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


def plot_roc_curves(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str | None = None, ax=None):
    """One-vs-rest ROC curves on one axes, the chance diagonal dashed.

    Args:
        curves: ``{class name: (fpr, tpr, auc)}``; ``fpr`` and ``tpr`` of equal length in
            [0, 1] (as :func:`dermlearn.evaluation.metrics.roc_curve` returns them).
        title: Axes title.
        ax: Axes to draw on (a new figure otherwise).

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 5))
    else:
        fig = ax.figure
    for name, (fpr, tpr, auc) in curves.items():
        if len(fpr) != len(tpr):
            raise ValueError(f"curve {name!r}: fpr and tpr differ in length ({len(fpr)} and {len(tpr)})")
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})", lw=1.5)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 - specificity (false positive rate)", ylabel="sensitivity (true positive rate)")
    ax.set_aspect("equal")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title or "ROC, each class against the rest")
    fig.tight_layout()
    return fig


def plot_reliability(bins: dict[str, np.ndarray], ece: float, title: str | None = None, ax=None):
    """Reliability diagram: accuracy against mean confidence per confidence bin.

    Args:
        bins: ``{'count', 'confidence', 'accuracy'}`` arrays of one length ``B`` (as
            :func:`dermlearn.evaluation.metrics.calibration_bins` returns them; NaN for empty bins).
        ece: The expected calibration error shown in the title.
        title: Axes title (the ECE is appended).
        ax: Axes to draw on (a new figure otherwise).

    Returns:
        The matplotlib Figure. Bars are the accuracy per bin, drawn over the bin's width;
        the diagonal is perfect calibration; the grey bars underneath show the share of items.
    """
    import matplotlib.pyplot as plt

    count, conf, acc = (np.asarray(bins[k], dtype=np.float64) for k in ("count", "confidence", "accuracy"))
    if not len(count) == len(conf) == len(acc):
        raise ValueError(f"bins: count, confidence and accuracy differ in length ({len(count)}, {len(conf)}, {len(acc)})")
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 5))
    else:
        fig = ax.figure
    width = 1.0 / len(count)
    left = np.arange(len(count)) * width
    filled = count > 0
    ax.bar(left[filled], count[filled] / count.sum(), width, align="edge", color="lightgrey", label="share of items")
    ax.bar(left[filled], acc[filled], width, align="edge", fill=False, edgecolor="tab:blue", lw=1.5, label="accuracy")
    ax.plot(conf[filled], acc[filled], "o", color="tab:blue", ms=4, label="mean confidence, accuracy")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (highest probability)", ylabel="accuracy")
    ax.set_aspect("equal")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"{title or 'reliability'}: ECE {ece:.3f}")
    fig.tight_layout()
    return fig
