"""Log a run to plain files: :class:`CSVLogger`."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

from dermlearn.io import atomic_write, atomic_write_json

from .run_logger import RunLogger

__all__ = ["CSVLogger"]


def _mm_ss(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 60:02d}:{s % 60:02d}"


class CSVLogger(RunLogger):
    """Write the epochs of every fit to ``fname`` in fastai's layout: a header ``epoch,
    train_loss, valid_loss, <metrics>, time`` and one row per epoch (``time`` as ``mm:ss``),
    written and flushed as each epoch ends, so that a run killed mid-way keeps every epoch
    it finished. Beside it: ``<stem>_hparams.json`` (the hyper-parameters of the last fit),
    ``<stem>_batches.csv`` (``step, train_loss, lr_0 .. lr_k`` for every batch) and a PNG per
    end-of-fit figure (``<stem>_confusion_matrix.png``, the leading pair's gallery,
    ``<stem>_lr_find.png``) and, with ``log_model``, the exported model ``<stem>_model.pth``.

    Args:
        fname: The CSV, relative to ``learn.path`` unless absolute (default ``history.csv``).
        log_model: Export the model (``learn.export``) beside the CSV at the end of each fit.
        append: Add the rows to an existing file (whose header must be this run's) instead of
            replacing it at the first fit, e.g. when a fit resumes from a checkpoint. Later
            fits of the same logger always add to the file: one logger, one run.
        hparams, figures, min_count: See :class:`~dermlearn.training.run_logger.RunLogger`.

    Raises:
        ValueError: (in ``before_fit``) ``append`` to a file whose columns are not this run's.
    """

    def __init__(self, fname: str | os.PathLike = "history.csv", append: bool = False, hparams: dict[str, Any] | None = None,
                 figures: bool = True, min_count: int = 1, log_model: bool = False) -> None:  # fmt: skip
        super().__init__(hparams, figures, min_count)
        self.fname, self.append, self.log_model = Path(fname), append, log_model
        self._file = self._batches = None
        self._started = False  # a fit of this logger wrote the file: later fits add to it

    @property
    def path(self) -> Path:
        """Where the CSV goes: ``fname`` under ``learn.path`` unless absolute."""
        return self.fname if self.fname.is_absolute() else Path(self.learn.path) / self.fname

    def _beside(self, suffix: str) -> Path:
        return self.path.with_name(f"{self.path.stem}_{suffix}")

    def log_hparams(self, hparams: dict[str, Any]) -> None:
        self.close()  # a fit that ended in an error left them open
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        header = ["epoch", *self.learn.recorder.metric_names, "time"]
        append = self.append or self._started
        if append and path.exists() and path.stat().st_size > 0:
            with open(path, newline="") as f:
                old = next(csv.reader(f), [])
            if old != header:
                raise ValueError(f"{path}: cannot append: its columns are {', '.join(old)}, this run's are {', '.join(header)}")
            self._file = open(path, "a", newline="")
        else:
            self._file = open(path, "w", newline="")
            csv.writer(self._file).writerow(header)
            self._file.flush()
        self._header = header
        self._batches = open(self._beside("batches.csv"), "a" if append else "w", newline="")
        self._batches_header = self._batches.tell() > 0
        atomic_write_json(hparams, self._beside("hparams.json"))
        self._started = True

    def log_batches(self, first_step: int, losses: list[float], lrs: list[list[float]]) -> None:
        w = csv.writer(self._batches)
        if not self._batches_header and lrs:
            w.writerow(["step", "train_loss", *[f"lr_{g}" for g in range(len(lrs[0]))]])
            self._batches_header = True
        for i, (loss, lr) in enumerate(zip(losses, lrs)):
            w.writerow([first_step + i, repr(loss), *map(repr, lr)])
        self._batches.flush()

    def log_epoch(self, values: dict[str, Any]) -> None:
        row = []
        for k in self._header:
            v = values.get(k)
            if k == "time":
                row.append(_mm_ss(float(v or 0.0)))
            elif isinstance(v, float):
                row.append(repr(v) if math.isfinite(v) else str(v))
            else:
                row.append("" if v is None else v)
        csv.writer(self._file).writerow(row)
        self._file.flush()
        os.fsync(self._file.fileno())

    def log_figure(self, name: str, fig) -> None:
        atomic_write(self._beside(f"{name}.png"), lambda f: fig.savefig(f, format="png", dpi=90))

    def close(self) -> None:
        for f in (self._file, self._batches):
            if f is not None and not f.closed:
                f.close()
        if self.log_model and self._started:
            self.learn.export(self._beside("model.pth"))

    def read_log(self):
        """The CSV as a pandas DataFrame."""
        import pandas as pd

        return pd.read_csv(self.path)
