"""The study's recipe against what a user would pick instead, on DermaMNIST at 28 px, at
equal wall-clock budget: same data, model (random init), batched augmentation and batch
size for every arm.

Arms (each trains on ``train``, chooses on ``valid``, and its chosen epoch is scored on
``test``):

* ``dermlearn``: the study's recipe as ``dermlearn experiment dermamnist`` runs it: LR range
  test (valley), SGDR with doubling cycles planned to fill the budget, the epoch with the
  best validation accuracy kept.
* ``fastai``: fastai's own ``Learner`` with ``fit_one_cycle`` at its ``lr_find`` valley, as
  many epochs as the budget holds (planned the same way), on the same loaders through
  :func:`dermlearn.integrations.fastai.fastai_dataloaders`.
* ``medmnist``: a plain PyTorch loop with MedMNIST's own recipe: Adam at 1e-3, the rate x0.1
  at 50% and 75% of the planned epochs.
* ``adamw-cosine``: a plain loop with AdamW (1e-3, weight decay 0.05) and a per-batch
  cosine schedule to zero over the planned epochs.

Every arm's clock starts before its own LR search or timing pass and stops each epoch
after validation; an arm stops when its next epoch would end past the budget. The weights
of every epoch are kept in memory and scored on ``test`` after the arm has finished (so
scoring costs no arm any time): that gives the test-accuracy-against-time curves. The
chosen epoch of each arm is its best validation accuracy.

The study's speed-up measure, per seed: ``eta = T_peer / T_dermlearn``, where ``T_peer`` is
the time the best peer (highest mean chosen test accuracy over seeds) took to train its
chosen epoch and ``T_dermlearn`` the time dermlearn's curve first reaches that peer's
chosen test accuracy (not reached: reported as such). As η looks at one accuracy only, the
time each arm's curve first reaches a ladder of accuracies (``--levels``) is tabulated too,
with dermlearn's speed-up against each peer at each level.

    python benchmarks/dermamnist_peers.py [--budget-min 5] [--seeds 0 1 2] [--out results/dermamnist_peers]
    python benchmarks/dermamnist_peers.py --summarize results/dermamnist_peers [--levels 0.70 0.72]

Writes ``curves.csv`` (every arm, seed and epoch), ``chosen.csv`` (one row per arm and
seed), ``eta.csv``, ``time_to_level.csv`` / ``.md``, ``results.md`` and ``curves.png`` under
``--out``. ``--summarize`` trains nothing: it rewrites ``time_to_level.csv`` / ``.md`` of a
finished run from its ``curves.csv``. Needs the dev extra (fastai).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import torch
from torch import nn

import dermlearn as dl
from dermlearn.callback import Callback
from dermlearn.evaluation.metrics import accuracy, balanced_accuracy, roc_auc
from dermlearn.experiments.arm_stats import time_to_level, time_to_level_table
from dermlearn.experiments.dermamnist import run_seed, t_interval
from dermlearn.experiments.options import add_recipe_args
from dermlearn.experiments.record import Record, markdown_table
from dermlearn.io import atomic_write_text
from dermlearn.models import default_stem
from dermlearn.transforms.normalize import IMAGENET_MEAN, IMAGENET_STD

ARMS = ("dermlearn", "fastai", "medmnist", "adamw-cosine")


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the model's weights (a ResNet-20 is 0.27 M parameters: cheap to keep)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class _Snapshots(Callback):
    """dermlearn callback: each epoch's weights, validation accuracy and clock time."""

    order = (
        61  # after the Recorder (50) has the epoch's values, before TimeBudget (62) stops the fit
    )

    def __init__(self, clock: Callable[[], float], rows: list[dict]) -> None:
        super().__init__()
        self.clock, self.rows = clock, rows

    def after_epoch(self) -> None:
        vals = self.learn.recorder.values[-1]
        self.rows.append({"epoch": self.learn.epoch, "train_s": self.clock(), "valid_acc": float(vals["accuracy"]),
                          "weights": snapshot(self.learn.model)})  # fmt: skip


def make_dls(data: dl.DermData, args: argparse.Namespace, seed: int) -> dl.DataLoaders:
    """The loaders every arm trains on (the experiment's: rotation, zoom and warp, batched)."""
    augment = dl.BatchAugment(args.size, max_rotate=args.rotate, max_zoom=1.2, max_warp=0.1, seed=seed, mean=IMAGENET_MEAN,
                              std=IMAGENET_STD)  # fmt: skip
    return data.dls(
        bs=args.bs, size=args.size, presize=args.size, augment=augment, seed=seed, progress=False
    )


def new_model(args: argparse.Namespace, c: int, seed: int | None = None) -> nn.Module:
    """The arms' model, random init (seeded when ``seed`` is given); the small-image stem
    where the experiment would choose it."""
    if seed is not None:
        dl.set_seed(seed)
    return dl.create_model(args.arch, c, stem=default_stem(args.arch, args.size))


def epoch_seconds(model: nn.Module, dls: dl.DataLoaders, n: int = 10) -> float:
    """Seconds an epoch (training plus half as many validation batches), timed on ``n``
    training batches of a throwaway copy, as the dermlearn experiment plans its cycles."""
    import copy

    n = min(n, len(dls.train))
    probe = copy.deepcopy(model).train()
    opt = torch.optim.Adam(probe.parameters(), 1e-3)
    it = iter(dls.train)
    t = time.perf_counter()
    for _ in range(n):
        x, y = next(it)
        loss = nn.functional.cross_entropy(probe(dls.apply(x, True)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t) / n * (len(dls.train) + 0.5 * len(dls.valid))


def valid_accuracy(model: nn.Module, dls: dl.DataLoaders) -> float:
    model.eval()
    right = total = 0
    with torch.no_grad():
        for x, y in dls.valid:
            right += int((model(dls.apply(x, False)).argmax(1) == y).sum())
            total += len(y)
    model.train()
    return right / total


def plain_loop(model: nn.Module, dls: dl.DataLoaders, budget_s: float, recipe: str) -> list[dict]:
    """A plain PyTorch training loop; ``recipe`` ``medmnist`` (Adam 1e-3, x0.1 at 50% and
    75% of the planned epochs) or ``adamw-cosine`` (AdamW 1e-3, wd 0.05, cosine to 0)."""
    t0 = time.perf_counter()
    epochs = max(1, int(0.85 * (budget_s - (time.perf_counter() - t0)) / epoch_seconds(model, dls)))
    steps = epochs * len(dls.train)
    if recipe == "medmnist":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.MultiStepLR(
            opt, milestones=[int(0.5 * steps), int(0.75 * steps)], gamma=0.1
        )
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    rows: list[dict] = []
    longest, last = 0.0, time.perf_counter()
    model.train()
    for epoch in range(epochs):
        for x, y in dls.train:
            loss = nn.functional.cross_entropy(model(dls.apply(x, True)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()  # per batch: the milestones and T_max are in batches
        acc = valid_accuracy(model, dls)
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
        rows.append(
            {"epoch": epoch, "train_s": now - t0, "valid_acc": acc, "weights": snapshot(model)}
        )
        if now - t0 + longest > budget_s:
            break
    return rows


def fastai_arm(model: nn.Module, dls: dl.DataLoaders, budget_s: float, lr_find_iters: int = 100) -> tuple[list[dict], float]:
    """fastai's Learner: ``lr_find`` valley (over ``lr_find_iters`` batches, as dermlearn's
    range test), then ``fit_one_cycle`` over the epochs the rest of the budget holds. Returns
    the epoch rows and the rate used."""
    import fastai.callback.schedule  # noqa: F401  (adds lr_find and fit_one_cycle to Learner)
    from fastai.callback.core import Callback as FastaiCallback
    from fastai.callback.core import CancelFitException
    from fastai.callback.schedule import valley
    from fastai.learner import Learner as FastaiLearner
    from fastai.metrics import accuracy as fastai_accuracy

    from dermlearn.integrations.fastai import fastai_dataloaders

    t0 = time.perf_counter()
    rows: list[dict] = []

    class Keep(FastaiCallback):
        order = 60  # after fastai's Recorder (50)

        def before_fit(self):
            self.longest, self.last = 0.0, time.perf_counter()

        def after_epoch(self):
            now = time.perf_counter()
            self.longest, self.last = max(self.longest, now - self.last), now
            rows.append({"epoch": self.epoch, "train_s": now - t0, "valid_acc": float(self.recorder.values[-1][2]),
                         "weights": snapshot(self.learn.model)})  # fmt: skip
            if self.epoch + 1 < self.n_epoch and now - t0 + self.longest > budget_s:
                raise CancelFitException()

    with tempfile.TemporaryDirectory() as tmp:
        learn = FastaiLearner(fastai_dataloaders(dls, device="cpu"), model, loss_func=nn.CrossEntropyLoss(),
                              metrics=fastai_accuracy, path=tmp)  # fmt: skip
        with learn.no_bar(), learn.no_logging():
            lr = float(learn.lr_find(num_it=lr_find_iters, suggest_funcs=(valley,), show_plot=False).valley)
        epochs = max(
            1, int(0.85 * (budget_s - (time.perf_counter() - t0)) / epoch_seconds(model, dls))
        )
        with learn.no_bar(), learn.no_logging():
            learn.fit_one_cycle(epochs, lr, cbs=[Keep()])
    return rows, lr


def score(model: nn.Module, weights: dict, dls: dl.DataLoaders, test_dl) -> dict[str, float]:
    """Test ACC / AUC (MedMNIST's definitions) and balanced accuracy of one epoch's weights."""
    model.load_state_dict(weights)
    model.eval()
    probs, targets = [], []
    with torch.no_grad():
        for x, y in test_dl:
            probs.append(model(dls.apply(x, False)).softmax(1))
            targets.append(y)
    p, t = torch.cat(probs), torch.cat(targets)
    return {
        "test_acc": float(accuracy(p, t)),
        "test_auc": float(roc_auc(p, t)),
        "test_balanced": float(balanced_accuracy(p, t)),
    }


def run_arm(
    arm: str, data: dl.DermData, args: argparse.Namespace, seed: int
) -> tuple[list[dict], dict]:
    """Train one arm on one seed; returns its epoch rows (with test scores) and extra facts."""
    dls = make_dls(data, args, seed)
    budget_s = args.budget_min * 60
    extra: dict = {}
    if arm == "dermlearn":
        rows: list[dict] = []
        t0 = time.perf_counter()
        exp_args = argparse.Namespace(arch=args.arch, stem="auto", size=args.size, bs=args.bs, budget_min=args.budget_min,
                                      lr_mult=1.0, lr_find_iters=args.lr_find_iters, probe_batches=args.probe_batches,
                                      rotate=args.rotate, label_smoothing=0.0,
                                      balance="none", bootstrap=0, table=False)  # fmt: skip
        row, _, _ = run_seed(
            data,
            exp_args,
            seed,
            log=lambda s: None,
            cbs=[_Snapshots(lambda: time.perf_counter() - t0, rows)],
        )
        extra = {"lr": row["lr"], "schedule": f"SGDR {row['cycles']} cycles of {row['cycle_len']} x 1, 2, 4..",
                 "experiment_test_acc": row["acc"]}  # fmt: skip
        model = new_model(args, data.c)  # the architecture to score the kept weights with
    elif arm == "fastai":
        model = new_model(args, data.c, seed)
        rows, lr = fastai_arm(model, dls, budget_s, args.lr_find_iters)
        extra = {"lr": lr, "schedule": f"fit_one_cycle({len(rows)} epochs run)"}
    else:
        model = new_model(args, data.c, seed)
        rows = plain_loop(model, dls, budget_s, arm)
        extra = {
            "lr": 1e-3,
            "schedule": "Adam, x0.1 at 50% and 75%" if arm == "medmnist" else "AdamW, cosine",
        }
    test_dl = data.test_dl(bs=256, size=args.size, presize=args.size)
    for r in rows:
        r.update(score(model, r.pop("weights"), dls, test_dl))
    return rows, extra


def eta(curves: pd.DataFrame, chosen: pd.DataFrame, peer: str) -> pd.DataFrame:
    """Per seed: the peer's chosen accuracy and time, the time dermlearn's curve first reaches
    that accuracy (:func:`time_to_level` at that one level), and their ratio (NaN where
    dermlearn never reaches it)."""
    out = []
    for seed, c in chosen[chosen["arm"] == peer].groupby("seed"):
        target, t_peer = float(c["test_acc"].iloc[0]), float(c["train_s"].iloc[0])
        d = curves[(curves["arm"] == "dermlearn") & (curves["seed"] == seed)]
        t_derm = float(time_to_level(d, [target])["seconds"].iloc[0])
        out.append({"seed": seed, "peer": peer, "peer_test_acc": target, "peer_s": t_peer, "dermlearn_s": t_derm,
                    "eta": t_peer / t_derm})  # fmt: skip
    return pd.DataFrame(out)


def write_time_to_level(curves: pd.DataFrame, levels: Sequence[float], out: str | Path) -> str:
    """Write ``time_to_level.csv`` (arm, seed, level, seconds) and ``time_to_level.md`` (one
    row per level: each arm's mean minutes over the seeds that reached it, and dermlearn's
    speed-up against each peer) under ``out``; returns the Markdown table."""
    times = time_to_level(curves, levels)
    atomic_write_text(times.to_csv(index=False), Path(out) / "time_to_level.csv")
    md = markdown_table(time_to_level_table(times, baseline="dermlearn"), {"level": ".2f"})
    atomic_write_text(md, Path(out) / "time_to_level.md")
    return md


def plot(curves: pd.DataFrame):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    for i, arm in enumerate(ARMS):
        for j, (_seed, c) in enumerate(curves[curves["arm"] == arm].groupby("seed")):
            ax.plot(
                c["train_s"] / 60,
                c["test_acc"],
                color=f"C{i}",
                alpha=0.8,
                marker=".",
                label=arm if j == 0 else None,
            )
    ax.set_xlabel("training time, minutes (LR search and timing included)")
    ax.set_ylabel("test accuracy (every epoch; the chosen one by validation)")
    ax.set_ylim(0.6, None)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    add_recipe_args(ap, budget_min=5.0)  # the same model, loaders and augmentation for every arm
    ap.add_argument("--subset", type=int, help="train on N training images drawn at random, every class kept (a smoke run)")
    ap.add_argument("--out", default="results/dermamnist_peers")
    ap.add_argument("--levels", type=float, nargs="+", default=[0.70, 0.72, 0.74, 0.76],
                    help="test accuracies whose time to reach is tabulated (default: %(default)s)")  # fmt: skip
    ap.add_argument("--summarize", metavar="DIR", help="train nothing: rewrite DIR's time-to-level tables from its curves.csv")
    args = ap.parse_args()
    if args.summarize:
        curves_csv = Path(args.summarize) / "curves.csv"
        if not curves_csv.is_file():
            ap.error(f"--summarize: no curves.csv in {args.summarize} (a finished run's --out folder is expected)")
        print(write_time_to_level(pd.read_csv(curves_csv), args.levels, args.summarize))
        return
    rec = Record("dermamnist_peers", args.out, args)
    data = dl.DermData.dermamnist()
    if args.subset:
        data = data.subset(args.subset)
    data.images(args.size, progress=False)  # decode before any clock starts
    print(
        data,
        f"\n{len(args.arms)} arms x {len(args.seeds)} seeds x {args.budget_min:g} min, torch threads {torch.get_num_threads()}",
    )
    curves, chosen = [], []
    for seed in args.seeds:
        order = (
            args.arms[seed % len(args.arms) :] + args.arms[: seed % len(args.arms)]
        )  # rotate: no arm always runs first
        for arm in order:
            rows, extra = run_arm(arm, data, args, seed)
            for r in rows:
                curves.append({"arm": arm, "seed": seed, **r})
            best = max(
                rows, key=lambda r: r["valid_acc"]
            )  # first epoch of the best validation accuracy
            chosen.append({"arm": arm, "seed": seed, "epochs": len(rows), **best, **extra})
            print(f"[seed {seed}] {arm:13s} {len(rows):2d} epochs, chosen epoch {best['epoch']} at {best['train_s'] / 60:.1f} min: "
                  f"valid {best['valid_acc']:.3f}, test ACC {best['test_acc']:.3f} AUC {best['test_auc']:.3f}", flush=True)  # fmt: skip
            rec.save_table(pd.DataFrame(curves), "curves")
            rec.save_table(pd.DataFrame(chosen), "chosen")
    curves_df, chosen_df = pd.DataFrame(curves), pd.DataFrame(chosen)
    rows = []
    for arm in args.arms:
        c = chosen_df[chosen_df["arm"] == arm]
        acc, auc, bal = (
            t_interval(c[k].tolist()) for k in ("test_acc", "test_auc", "test_balanced")
        )
        rows.append({"arm": arm, "ACC": acc[0], "ACC 95% (t, seeds)": f"[{acc[1]:.3f}, {acc[2]:.3f}]", "AUC": auc[0],
                     "AUC 95%": f"[{auc[1]:.3f}, {auc[2]:.3f}]", "balanced accuracy": bal[0],
                     "epochs": c["epochs"].mean(), "chosen at (min)": c["train_s"].mean() / 60})  # fmt: skip
    table = pd.DataFrame(rows)
    peers = table[table["arm"] != "dermlearn"]
    summary = {}
    if "dermlearn" in args.arms and len(peers):
        best_peer = str(peers.sort_values("ACC", ascending=False)["arm"].iloc[0])
        e = eta(curves_df, chosen_df, best_peer)
        rec.save_table(e, "eta")
        summary = {
            "best_peer": best_peer,
            "eta_per_seed": [None if math.isnan(v) else round(v, 2) for v in e["eta"]],
        }
        print(e.to_string(index=False))
        print(write_time_to_level(curves_df, args.levels, args.out))
    rec.save_figure(plot(curves_df), "curves.png")
    md = rec.finish(table, formats={"ACC": ".3f", "AUC": ".3f", "balanced accuracy": ".3f", "epochs": ".1f",
                                    "chosen at (min)": ".1f"}, extra={"data": repr(data), **summary})  # fmt: skip
    print(md)


if __name__ == "__main__":
    main()
