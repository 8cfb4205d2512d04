"""``Recorder``: the training history (per-iteration losses and hyper-parameters, per-epoch
losses and metrics) and its plots.

Losses are kept on the device during an epoch and read back once at its end.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dermlearn.callback import Callback
from dermlearn.distributed import all_gather_cat
from dermlearn.evaluation.metrics import metric_name, takes_probabilities

__all__ = ["Recorder", "smooth"]


def smooth(values: list[float] | np.ndarray, beta: float = 0.98) -> np.ndarray:
    """Debiased exponential moving average (fastai's smoothing of losses), float64."""
    out = np.empty(len(values), dtype=np.float64)
    avg = 0.0
    for i, v in enumerate(values):
        avg = beta * avg + (1 - beta) * float(v)
        out[i] = avg / (1 - beta ** (i + 1))
    return out


class Recorder(Callback):
    """Record what happens during :meth:`Learner.fit`.

    Attributes:
        losses: Training loss of every iteration of the current fit (floats).
        lrs: Learning rate of the last layer group at every iteration.
        group_lrs: Learning rate of every layer group at every iteration.
        moms: Momentum (``betas[0]`` / ``momentum``) of the last group at every iteration.
        values: One dict per epoch: ``epoch``, ``train_loss``, ``valid_loss``, one entry per
            metric, ``time`` (seconds).
        last_valid: Loss and metrics of the latest validation pass.
    """

    order = 50

    def __init__(self) -> None:
        super().__init__()
        self.losses: list[float] = []
        self.lrs: list[float] = []
        self.group_lrs: list[list[float]] = []
        self.moms: list[float] = []
        self.values: list[dict[str, Any]] = []
        self.last_valid: dict[str, Any] = {}
        self.iters_per_epoch: list[int] = []
        self._reset_valid()

    @property
    def metric_names(self) -> list[str]:
        """Names of the per-epoch values: ``train_loss``, ``valid_loss`` and the metrics."""
        return ["train_loss", "valid_loss", *[metric_name(m) for m in self.learn.metrics]]

    def before_fit(self) -> None:
        self.losses, self.lrs, self.group_lrs, self.moms, self.values, self.iters_per_epoch = [], [], [], [], [], []

    def before_epoch(self) -> None:
        self._t0 = time.perf_counter()
        self._row: dict[str, Any] = {"epoch": self.learn.epoch}
        self.last_valid = {}
        self._reset_valid()

    def before_train(self) -> None:
        self._batch_losses: list[Tensor] = []
        self._sizes: list[int] = []

    def before_validate(self) -> None:
        self._reset_valid()

    def _reset_valid(self) -> None:
        self._v_sum: Tensor | None = None
        self._v_n = 0
        self._v_preds: list[Tensor] = []
        self._v_targs: list[Tensor] = []

    def after_loss(self) -> None:
        learn = self.learn
        bs = learn.pred.shape[0]
        if learn.training:
            self._batch_losses.append(learn.loss)
            self._sizes.append(bs)
        else:
            s = learn.loss.float() * bs
            self._v_sum = s if self._v_sum is None else self._v_sum + s
            self._v_n += bs
            if learn.metrics:
                self._v_preds.append(learn.pred.detach())
                self._v_targs.append(learn.yb)

    def after_batch(self) -> None:
        if not self.learn.training:
            return
        opt = self.learn.opt
        last = opt.param_groups[-1]
        self.lrs.append(float(last["lr"]))
        self.moms.append(float(last["betas"][0] if "betas" in last else last.get("momentum", 0.0)))
        seen: dict[int, float] = {}
        for pg in opt.param_groups:
            seen.setdefault(pg.get("layer_group", 0), float(pg["lr"]))
        self.group_lrs.append([seen[k] for k in sorted(seen)])

    def after_train(self) -> None:
        if self._batch_losses:
            losses = torch.stack([x.float() for x in self._batch_losses]).cpu().double()  # one sync per epoch
            sizes = torch.tensor(self._sizes, dtype=torch.float64)
            self.losses.extend(losses.tolist())
            total = self.learn.all_reduce_sum(torch.stack([(losses * sizes).sum(), sizes.sum()]))  # over all ranks
            self._row["train_loss"] = float(total[0] / total[1])
        else:
            self._row["train_loss"] = float("nan")
        self.iters_per_epoch.append(len(self._batch_losses))

    def after_validate(self) -> None:
        out: dict[str, Any] = {}
        dev = self.learn.device
        s = self._v_sum.double() if self._v_sum is not None else torch.zeros((), dtype=torch.float64, device=dev)
        total = self.learn.all_reduce_sum(torch.stack([s.to(dev), torch.tensor(float(self._v_n), dtype=torch.float64, device=dev)]))
        out["valid_loss"] = float(total[0] / total[1]) if float(total[1]) > 0 else float("nan")
        if self.learn.metrics and self._v_preds:
            preds, targs = all_gather_cat(torch.cat(self._v_preds)), all_gather_cat(torch.cat(self._v_targs))
            probs = None
            for m in self.learn.metrics:
                if takes_probabilities(m):
                    probs = self.learn.activation(preds.float()) if probs is None else probs
                v = m(probs if takes_probabilities(m) else preds, targs)
                v = v.detach().cpu() if isinstance(v, Tensor) else torch.as_tensor(v)
                out[metric_name(m)] = float(v) if v.numel() == 1 else v.tolist()
        self.last_valid = out

    def after_epoch(self) -> None:
        row = self._row
        row.setdefault("train_loss", float("nan"))
        row["valid_loss"] = self.last_valid.get("valid_loss", float("nan"))
        for name in self.metric_names[2:]:
            row[name] = self.last_valid.get(name, float("nan"))
        row["time"] = time.perf_counter() - self._t0
        self.values.append(row)

    # ------------------------------------------------------------------ access & plots
    def history(self, name: str) -> list[Any]:
        """Per-epoch values of ``name`` (``train_loss``, ``valid_loss`` or a metric)."""
        if self.values and name not in self.values[-1]:
            raise KeyError(f"no recorded value {name!r}; available: {sorted(self.values[-1])}")
        return [r[name] for r in self.values]

    @property
    def smooth_losses(self) -> np.ndarray:
        return smooth(self.losses)

    def plot_loss(self, skip_start: int = 5, with_valid: bool = True, ax=None):
        """Training loss per iteration (raw and smoothed) and validation loss per epoch.
        Returns the matplotlib Figure (constrained layout: the axis labels stay inside it)."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
        else:
            fig = ax.figure
        it = np.arange(len(self.losses))
        ax.plot(it[skip_start:], self.losses[skip_start:], alpha=0.3, label="train (raw)")
        ax.plot(it[skip_start:], self.smooth_losses[skip_start:], label="train (smoothed)")
        if with_valid and self.values:
            ends = np.cumsum(self.iters_per_epoch) - 1
            vl = [r["valid_loss"] for r in self.values]
            ax.plot(ends[: len(vl)], vl, "o-", label="valid")
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss")
        ax.legend()
        return fig

    def plot_lr(self, ax=None):
        """Learning rate per iteration (and momentum): one line per distinct schedule, labelled
        with the layer groups that follow it (three groups at one rate draw one line, not
        three on top of each other). Returns the Figure (constrained layout)."""
        import matplotlib.pyplot as plt

        if ax is None:
            fig, axs = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
        else:
            fig, axs = ax.figure, [ax, None]
        g = np.asarray(self.group_lrs)
        lines: list[tuple[list[int], np.ndarray]] = []  # groups that share one schedule
        for k in range(g.shape[1] if g.ndim == 2 else 0):
            same = next((groups for groups, lrs in lines if np.array_equal(lrs, g[:, k])), None)
            if same is None:
                lines.append(([k], g[:, k]))
            else:
                same.append(k)
        for groups, lrs in lines:
            label = f"group {groups[0]}" if len(groups) == 1 else "groups " + ", ".join(map(str, groups))
            axs[0].plot(lrs, label=label)
        axs[0].set_xlabel("iteration")
        axs[0].set_ylabel("learning rate")
        axs[0].legend()
        if axs[1] is not None:
            axs[1].plot(self.moms)
            axs[1].set_xlabel("iteration")
            axs[1].set_ylabel("momentum")
        return fig

    def state_dict(self) -> dict[str, Any]:
        return {
            "losses": list(self.losses), "lrs": list(self.lrs), "group_lrs": [list(x) for x in self.group_lrs],
            "moms": list(self.moms), "values": [dict(v) for v in self.values], "iters_per_epoch": list(self.iters_per_epoch),
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
