"""The experiments' result plots."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["plot_bars"]


def plot_bars(table: pd.DataFrame, label_col: str, value_cols: Sequence[str], title: str, baseline: bool = False,
              xlim: tuple[float, float] = (0.0, 1.0), error_cols: Sequence[str] | None = None):  # fmt: skip
    """Horizontal bars of ``value_cols`` (scores in ``xlim``) for each row, labelled by
    ``label_col``; with ``baseline``, the first row's values as dashed lines; with
    ``error_cols`` (one per value column, e.g. standard deviations over seeds), error bars
    of that half-width. Returns the Figure."""
    import matplotlib.pyplot as plt

    # Constrained layout with the legend "outside" the axes puts it below the x label at
    # any figure height (a fixed axes-fraction offset overlapped the label on short
    # figures and left a gap on tall ones).
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(table) * max(1, len(value_cols) / 2) + 1.2), layout="constrained")
    y = np.arange(len(table))
    h = 0.8 / len(value_cols)
    for i, col in enumerate(value_cols):
        err = None if error_cols is None else table[error_cols[i]]
        ax.barh(y - 0.4 + h * (i + 0.5), table[col], height=h, label=col, color=f"C{i}", xerr=err, capsize=2)
        if baseline:
            ax.axvline(table[col].iloc[0], color=f"C{i}", lw=0.8, ls="--")
    ax.set_yticks(y, [str(v) for v in table[label_col]])
    ax.invert_yaxis()
    ax.set_xlim(*xlim)
    ax.set_xlabel("validation score")
    fig.legend(loc="outside lower center", ncol=len(value_cols), fontsize=8, frameon=False)
    ax.set_title(title + (" (dashed: first row)" if baseline else ""))
    return fig
