"""The study's CIFAR-10 experiment: baseline vs speed-up recipe, time to a target accuracy.

* **baseline**: a fixed lower learning rate with warm restarts of equal length (SGDR,
  ``cycle_mult=1``), early stopping once the validation accuracy reaches the target;
* **recipe**: LR range test, SGDR with cycle length doubling and discriminative learning
  rates ``slice(lr / 10, lr)``, same early stop at the target. The learning rate is the
  range test's ``valley`` by default (the study's "point of inflexion" of the loss);
  ``--suggestion max`` takes the larger of Smith's ``minimum`` rule and ``valley``, as
  the library's recipe did from random initialisation until that diverged on BCE.

Both start from the same initial weights and data. Reports, per architecture, the final
accuracy, the wall time to the target, and ``eta = T_baseline / T_recipe`` measured in the
same run. Without pretrained weights (offline) the recipe runs from random initialisation.

    python -m dermlearn.experiments.cifar_speedup [--quick] [--archs resnet18] [--out DIR]
"""

from __future__ import annotations

import argparse
import copy
import math
import time

import pandas as pd
import torch

from dermlearn.callback import Callback, CancelFitException
from dermlearn.data import DermData
from dermlearn.evaluation.metrics import accuracy
from dermlearn.losses import BCEWithLogitsOneHot
from dermlearn.models import create_model
from dermlearn.training.learner import Learner
from dermlearn.training.lr_finder import minimum, valley
from dermlearn.training.recipe import RATE_RULES, rate_from

from .options import parse_args
from .record import Record


class StopAtTarget(Callback):
    """Stop when the validation accuracy reaches ``target``; records the wall time."""

    order = 62

    def __init__(self, target: float) -> None:
        super().__init__()
        self.target = target
        self.t0 = time.perf_counter()
        self.reached_s: float | None = None

    def after_epoch(self) -> None:
        self.learn.recorder.values[-1]["elapsed_s"] = round(time.perf_counter() - self.t0, 2)
        if self.learn.recorder.values[-1].get("accuracy", 0.0) >= self.target:
            self.reached_s = time.perf_counter() - self.t0
            raise CancelFitException()


def subset(per_class_train: int, per_class_valid: int, seed: int) -> DermData:
    full = DermData.cifar10()
    items = full.items
    parts = []
    for split, k in (("train", per_class_train), ("valid", per_class_valid)):
        part = items[items["split"] == split]
        for label in sorted(part["label"].unique()):
            cls = part[part["label"] == label]
            parts.append(cls.sample(n=min(k, len(cls)), random_state=seed))
    return DermData(pd.concat(parts, ignore_index=True), name="CIFAR-10 subset")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="dermlearn experiment cifar-speedup", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="300 + 60 images per class, target 0.28, at most 7 epochs, resnet18 "
                                                            "(the baseline reached 0.29-0.30 in 7 epochs in our runs)")
    ap.add_argument("--archs", nargs="+", default=["resnet34", "resnet50", "resnet101", "resnet152", "densenet161"])
    ap.add_argument("--per-class", type=int, default=5000, help="training images per class")
    ap.add_argument("--valid-per-class", type=int, default=1000)
    ap.add_argument("--target", type=float, default=0.9)
    ap.add_argument("--max-epochs", type=int, default=31, help="budget per arm (SGDR 1+2+4+8+16)")
    ap.add_argument("--base-lr", type=float, default=1e-4, help="the baseline's fixed learning rate")
    ap.add_argument("--suggestion", choices=RATE_RULES, default="valley",
                    help="the recipe's learning rate from the range test: valley, minimum (Smith's: a tenth of the "
                         "loss minimum) or the larger of the two (default: %(default)s)")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--bs", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="results/cifar_speedup", help="output folder (default: %(default)s)")
    args = parse_args(ap, argv, {"per_class": 300, "valid_per_class": 60, "target": 0.28, "max_epochs": 7, "archs": ["resnet18"]})
    rec = Record("cifar-speedup", args.out, args)
    data = subset(args.per_class, args.valid_per_class, args.seed)
    print(data)
    cycles = int(math.log2(args.max_epochs + 1))  # 1 + 2 + ... + 2**(cycles-1) <= max_epochs
    rows = []
    for arch in args.archs:
        torch.manual_seed(args.seed)
        init = create_model(arch, 10, head="linear")
        result = {}
        for arm in ("baseline", "recipe"):
            dls = data.dls(bs=args.bs, size=args.size, presize=args.size, seed=args.seed, progress=False)
            torch.manual_seed(args.seed)  # the head's dropout draws the same masks in both arms
            learn = Learner(dls, copy.deepcopy(init), loss_func=BCEWithLogitsOneHot(), metrics=[accuracy], progress=False)
            stop = StopAtTarget(args.target)
            if arm == "baseline":
                learn.fit_sgdr(args.max_epochs, 1, lr_max=args.base_lr, cycle_mult=1, cbs=[stop])
                lr = args.base_lr
            else:
                res = learn.lr_find(num_it=50, suggest_funcs=(valley, minimum), show_plot=False)
                sugg = res.suggestions
                lr = rate_from(sugg, args.suggestion)
                print(f"[{arch}] lr_find: valley={sugg['valley']:.2e}, minimum={sugg['minimum']:.2e} -> lr {lr:.2e}")
                learn.fit_sgdr(cycles, 1, lr_max=slice(lr / 10, lr), cycle_mult=2, cbs=[stop])
            acc = learn.recorder.values[-1]["accuracy"]
            rec.add_history(learn.recorder.values, architecture=arch, arm=arm)
            result[arm] = (acc, stop.reached_s, len(learn.recorder.values), lr)
            reached = f"reached in {stop.reached_s:.0f}s" if stop.reached_s else "not reached"
            print(f"[{arch}] {arm}: accuracy {acc:.3f}, target {reached}")
        (ba, bt, be, _), (ra, rt, re, rlr) = result["baseline"], result["recipe"]
        eta = (bt / rt) if (bt and rt) else float("nan")
        rows.append({"architecture": arch, "baseline_acc": ba, "baseline_time_s": bt, "baseline_epochs": be,
                     "recipe_acc": ra, "recipe_time_s": rt, "recipe_epochs": re, "recipe_lr": rlr, "eta": eta})  # fmt: skip
    table = pd.DataFrame(rows)
    rec.save_figure(plot_curves(pd.DataFrame(rec.history), args.target), "accuracy.png")
    md = rec.finish(table, formats={"baseline_acc": ".3f", "recipe_acc": ".3f", "baseline_time_s": ".0f", "recipe_time_s": ".0f",
                                    "recipe_lr": ".2e", "eta": ".2f"}, extra={"data": repr(data)},
                    missing={"baseline_time_s": "not reached", "recipe_time_s": "not reached"})  # fmt: skip
    print(md)
    return 0


def plot_curves(history: pd.DataFrame, target: float):
    """Validation accuracy against wall time, per architecture and arm, with the target."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for (arch, arm), h in history.groupby(["architecture", "arm"], sort=False):
        ax.plot(h["elapsed_s"], h["accuracy"], marker="o", ls="-" if arm == "recipe" else "--", label=f"{arch} {arm}")
    ax.axhline(target, color="grey", lw=0.8)
    ax.set_xlabel("wall time (s)")
    ax.set_ylabel("validation accuracy")
    ax.legend(fontsize=8)
    ax.set_title("CIFAR-10: baseline vs speed-up recipe")
    return fig


if __name__ == "__main__":
    raise SystemExit(main())
