"""``ProgressCallback``: a progress bar per training/validation pass and one table row per
epoch (epoch, losses, metrics, time)."""

from __future__ import annotations

import math
import sys

from dermlearn.callback import Callback

__all__ = ["ProgressCallback"]


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6f}"
    if isinstance(v, list):
        return "[" + " ".join(f"{x:.2f}" for x in v) + "]"
    return str(v)


class ProgressCallback(Callback):
    """Show a tqdm bar during each pass and print a row per epoch.

    Args:
        bar: Show per-batch bars (the table is printed either way).
        file: Where the table goes (stdout by default).
    """

    order = 55

    def __init__(self, bar: bool = True, file=None) -> None:
        super().__init__()
        self.bar = bar
        self.file = file
        self._pbar = None

    def before_fit(self) -> None:
        names = ["epoch", *self.learn.recorder.metric_names, "time"]
        self._widths = [max(len(n), 9) for n in names]
        print("  ".join(n.ljust(w) for n, w in zip(names, self._widths)), file=self.file or sys.stdout, flush=True)

    def _open(self, desc: str) -> None:
        if not self.bar:
            return
        from tqdm.auto import tqdm

        self._pbar = tqdm(total=len(self.learn.dl), desc=desc, leave=False, mininterval=0.5, dynamic_ncols=True)

    def _close(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None

    def before_train(self) -> None:
        self._open(f"epoch {self.learn.epoch} train")

    def before_validate(self) -> None:
        self._open("valid")

    def after_batch(self) -> None:
        if self._pbar is not None:
            self._pbar.update(1)

    def after_train(self) -> None:
        self._close()

    def after_validate(self) -> None:
        self._close()

    def after_epoch(self) -> None:
        row = self.learn.recorder.values[-1] if self.learn.recorder.values else None
        if row is None:
            return
        names = ["epoch", *self.learn.recorder.metric_names]
        cells = [_fmt(row.get(n, float("nan"))) for n in names] + [f"{row['time']:.1f}s"]
        print("  ".join(c.ljust(w) for c, w in zip(cells, self._widths)), file=self.file or sys.stdout, flush=True)

    def after_fit(self) -> None:
        self._close()
