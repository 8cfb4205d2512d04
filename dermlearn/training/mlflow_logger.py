"""Log a run to MLflow: :class:`MLflowCallback` (extra ``dermlearn[mlflow]``)."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from .run_logger import RunLogger

__all__ = ["MLflowCallback"]


class MLflowCallback(RunLogger):
    """Log every fit to an MLflow run: the hyper-parameters as params (lists and tables as
    JSON), ``train/loss`` and ``train/lr_<group>`` per batch (the step is the batch),
    ``epoch/<name>`` per epoch (step: the epoch's last batch), the end-of-fit figures as artifacts
    under ``figures/``, and optionally the exported model as an artifact ``model/model.pth``.

    Args:
        tracking_uri: Where MLflow keeps runs (default: MLflow's own, ``MLFLOW_TRACKING_URI``).
        experiment: The experiment's name (created when missing).
        run_name: The run's name.
        log_model: Export the model at the end of each fit and log it.
        hparams, figures, min_count: See :class:`~dermlearn.training.run_logger.RunLogger`.

    Raises:
        ImportError: mlflow is not installed (``pip install 'dermlearn[mlflow]'``).
    """

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None, run_name: str | None = None,
                 log_model: bool = False, hparams: dict[str, Any] | None = None, figures: bool = True,
                 min_count: int = 1) -> None:  # fmt: skip
        try:
            import mlflow
        except ImportError as e:
            raise ImportError("MLflowCallback needs mlflow: pip install 'dermlearn[mlflow]'") from e
        super().__init__(hparams, figures, min_count)
        self.mlflow, self.log_model = mlflow, log_model
        self.tracking_uri, self.experiment, self.run_name = tracking_uri, experiment, run_name
        self.client = self.run_id = None

    def log_hparams(self, hparams: dict[str, Any]) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(self.tracking_uri)
        if self.run_id is None:  # one run for every fit of this callback
            name = self.experiment or "dermlearn"
            exp = self.client.get_experiment_by_name(name)
            exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(name)
            self.run_id = self.client.create_run(exp_id, run_name=self.run_name).info.run_id
        params = {k: v if isinstance(v, (int, float, str, bool)) or v is None else json.dumps(v) for k, v in hparams.items()}
        existing = self.client.get_run(self.run_id).data.params
        self.client.log_batch(self.run_id, params=[self.mlflow.entities.Param(k, str(v)[:6000]) for k, v in params.items()
                                                   if k not in existing])  # fmt: skip

    def log_batches(self, first_step: int, losses: list[float], lrs: list[list[float]]) -> None:
        from mlflow.entities import Metric

        now, ms = int(time.time() * 1000), []
        for i, (loss, lr) in enumerate(zip(losses, lrs)):
            ms.append(Metric("train/loss", loss, now, first_step + i))
            ms += [Metric(f"train/lr_{g}", v, now, first_step + i) for g, v in enumerate(lr)]
        for k in range(0, len(ms), 1000):  # MLflow's batch limit
            self.client.log_batch(self.run_id, metrics=ms[k : k + 1000])

    def log_epoch(self, values: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        step = max(self.step - 1, 0)
        now = int(time.time() * 1000)
        ms = [Metric(f"epoch/{k}", float(v), now, step) for k, v in values.items() if k != "epoch" and isinstance(v, (int, float))]
        self.client.log_batch(self.run_id, metrics=ms)

    def log_figure(self, name: str, fig) -> None:
        self.client.log_figure(self.run_id, fig, f"figures/{name}.png")

    def close(self) -> None:
        if self.client is None or not self.log_model:
            return
        with tempfile.TemporaryDirectory() as tmp:
            path = self.learn.export(Path(tmp) / "model.pth")
            self.client.log_artifact(self.run_id, str(path), artifact_path="model")

    def finish(self) -> None:
        """Mark the MLflow run finished (later fits of this callback start a new one)."""
        if self.client is not None and self.run_id is not None:
            self.client.set_terminated(self.run_id)
            self.run_id = None
