"""Log a run to TensorBoard: :class:`TensorBoardCallback` (extra ``dermlearn[tensorboard]``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .run_logger import RunLogger

__all__ = ["TensorBoardCallback"]


class TensorBoardCallback(RunLogger):
    """Write every fit to a TensorBoard log folder through ``torch.utils.tensorboard``:
    scalars ``train/loss`` and ``train/lr_<group>`` per batch, ``epoch/<name>`` per epoch
    (losses and metrics), the hyper-parameters as text ``hparams`` (JSON) and through
    TensorBoard's hparams plugin (with the last epoch's values), and the end-of-fit figures
    as images; with ``log_model``, the exported model as ``<log_dir>/model.pth``. View with
    ``tensorboard --logdir <log_dir>``.

    Args:
        log_dir: The folder, relative to ``learn.path`` unless absolute (default ``runs``).
        log_model: Export the model (``learn.export``) into the folder at the end of each fit.
        hparams, figures, min_count: See :class:`~dermlearn.training.run_logger.RunLogger`.

    Raises:
        ImportError: tensorboard is not installed (``pip install 'dermlearn[tensorboard]'``).
    """

    def __init__(self, log_dir: str | os.PathLike = "runs", hparams: dict[str, Any] | None = None, figures: bool = True,
                 min_count: int = 1, log_model: bool = False) -> None:  # fmt: skip
        try:
            import tensorboard  # noqa: F401
        except ImportError as e:
            raise ImportError("TensorBoardCallback needs tensorboard: pip install 'dermlearn[tensorboard]'") from e
        super().__init__(hparams, figures, min_count)
        self.log_dir, self.log_model = Path(log_dir), log_model
        self.writer = None

    def log_hparams(self, hparams: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._dir = self.log_dir if self.log_dir.is_absolute() else Path(self.learn.path) / self.log_dir
        self.writer = SummaryWriter(log_dir=str(self._dir))
        self.writer.add_text("hparams", "```json\n" + json.dumps(hparams, indent=1) + "\n```", self.step)
        self._hparams = hparams

    def log_batches(self, first_step: int, losses: list[float], lrs: list[list[float]]) -> None:
        for i, (loss, lr) in enumerate(zip(losses, lrs)):
            self.writer.add_scalar("train/loss", loss, first_step + i)
            for g, v in enumerate(lr):
                self.writer.add_scalar(f"train/lr_{g}", v, first_step + i)

    def log_epoch(self, values: dict[str, Any]) -> None:
        self._last = values
        for k, v in values.items():
            if k != "epoch" and isinstance(v, (int, float)):
                self.writer.add_scalar(f"epoch/{k}", float(v), int(values["epoch"]))
        self.writer.flush()

    def log_figure(self, name: str, fig) -> None:
        self.writer.add_figure(name, fig, self.step, close=False)

    def close(self) -> None:
        if self.writer is None:
            return
        last = getattr(self, "_last", {})
        flat = {k: (v if isinstance(v, (int, float, str, bool)) else json.dumps(v)) for k, v in self._hparams.items()}
        metrics = {f"hparam/{k}": float(v) for k, v in last.items() if k not in ("epoch", "time") and isinstance(v, (int, float))}
        if metrics:
            self.writer.add_hparams(flat, metrics, run_name=".")
        self.writer.close()
        self.writer = None
        if self.log_model:
            self.learn.export(self._dir / "model.pth")
