"""Log a run to Weights & Biases: :class:`WandbCallback` (extra ``dermlearn[wandb]``)."""

from __future__ import annotations

from typing import Any

from .run_logger import RunLogger

__all__ = ["WandbCallback"]


class WandbCallback(RunLogger):
    """Log every fit to a W&B run: the hyper-parameters as the run's config, ``train/loss``
    and ``train/lr_<group>`` per batch (the W&B step is the batch), ``epoch/<name>`` per
    epoch, the end-of-fit figures as images, and optionally the exported model as an
    artifact. ``WANDB_MODE=offline`` writes the run to ``./wandb`` for ``wandb sync`` later.

    Args:
        project: The W&B project; ``init``: more arguments of ``wandb.init`` (``entity``,
            ``name``, ``dir``, ...). A run already started with ``wandb.init`` is used as it is.
        log_model: Export the model at the end of each fit (``learn.export``) and log it as a
            ``model`` artifact.
        hparams, figures, min_count: See :class:`~dermlearn.training.run_logger.RunLogger`.

    Raises:
        ImportError: wandb is not installed (``pip install 'dermlearn[wandb]'``).
    """

    def __init__(self, project: str | None = None, log_model: bool = False, hparams: dict[str, Any] | None = None,
                 figures: bool = True, min_count: int = 1, **init: Any) -> None:  # fmt: skip
        try:
            import wandb
        except ImportError as e:
            raise ImportError("WandbCallback needs wandb: pip install 'dermlearn[wandb]'") from e
        super().__init__(hparams, figures, min_count)
        self.wandb, self.project, self.log_model, self.init = wandb, project, log_model, init
        self.run = None

    def log_hparams(self, hparams: dict[str, Any]) -> None:
        self.run = self.wandb.run or self.wandb.init(project=self.project, **self.init)
        self.run.config.update(hparams, allow_val_change=True)

    def log_batches(self, first_step: int, losses: list[float], lrs: list[list[float]]) -> None:
        for i, (loss, lr) in enumerate(zip(losses, lrs)):
            self.run.log({"train/loss": loss, **{f"train/lr_{g}": v for g, v in enumerate(lr)}}, step=first_step + i)

    def log_epoch(self, values: dict[str, Any]) -> None:
        epoch = {f"epoch/{k}": float(v) for k, v in values.items() if isinstance(v, (int, float))}
        self.run.log(epoch, step=max(self.step - 1, 0))  # with the epoch's last batch

    def log_figure(self, name: str, fig) -> None:
        self.run.log({name: self.wandb.Image(fig)}, step=max(self.step - 1, 0))

    def close(self) -> None:
        """The run stays open for later fits (one run for the whole recipe); :meth:`finish` ends it."""
        if self.run is None:
            return
        if self.log_model:
            import tempfile
            from pathlib import Path

            with tempfile.TemporaryDirectory() as tmp:
                path = self.learn.export(Path(tmp) / "model.pth")
                artifact = self.wandb.Artifact("model", type="model")
                artifact.add_file(str(path))  # copied to W&B's staging folder here
                self.run.log_artifact(artifact)

    def finish(self) -> None:
        """End the W&B run (later fits of this callback start a new one)."""
        if self.run is not None:
            self.run.finish()
            self.run = None
