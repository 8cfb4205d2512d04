"""Transfer learning measured on the CPU: a small-image body pretrained on CIFAR-10 with
dermlearn, then fine-tuned on DermaMNIST three ways within the same wall-clock budget.

The study's recipe is a fine-tuning recipe, and from random weights it cannot show what its
discriminative learning rates do. With no ImageNet weights offline, this experiment makes
its own pretrained body: the study's recipe trains ``--arch`` (ResNet-20 by default) on the
CIFAR-10 training images (41,670; 8,330 held out to choose the epoch, the official test set
scored once), resized to DermaMNIST's 28 px, and the weights are written to
``cifar10_<arch>.pth``, a file ``create_model(arch, n, pretrained=path)`` loads. Each seed
then trains, on DermaMNIST's train split (every choice on ``valid``, ``test`` scored once):

* **two-phase, discriminative rates**: the study's recipe on the pretrained body: the range
  test on the frozen body, the new head alone (SGDR, ``--head-cycles`` cycles of 1, 2..
  epochs), then every layer with ``slice(lr / 100, lr / 10)`` over the layer groups and SGDR
  with doubling cycles for the rest of the budget;
* **pretrained, one rate**: the same body, every layer from the start at the range test's
  rate (SGDR, doubling cycles);
* **from scratch**: the same architecture from random weights, same schedule.

Every arm keeps its best validation epoch. Reports test ACC, AUC, balanced accuracy and
per-class recall as means with 95% t intervals over seeds, and each arm's paired difference
to the arm trained from scratch.

    dermlearn experiment dermamnist-transfer [--quick] [--seeds 0 1 2] [--budget-min 3]
        [--pretrain-min 12 | --body cifar10_resnet20.pth]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from dermlearn.data import DermData
from dermlearn.io import atomic_path, atomic_write_text

from .arm_stats import paired_intervals, plot_arms, summary
from .dermamnist import run_seed, score_test, train_seed
from .options import add_recipe_args, parse_args
from .record import Record, markdown_table

__all__ = ["ARMS", "main", "pretrain"]

# arm: (starts from the pretrained body, the study's two-phase recipe)
ARMS = {
    "two-phase, discriminative rates": (True, True),
    "pretrained, one rate": (True, False),
    "from scratch": (False, False),
}


def _train_args(args: argparse.Namespace, **changes) -> argparse.Namespace:
    base = dict(arch=args.arch, stem="auto", size=args.size, bs=args.bs, budget_min=args.budget_min, lr_mult=1.0,
                lr_find_iters=args.lr_find_iters, probe_batches=args.probe_batches, rotate=args.rotate, flip_vert=True,
                label_smoothing=0.0, balance="none", head_cycles=args.head_cycles, bootstrap=args.bootstrap, table=False)  # fmt: skip
    return argparse.Namespace(**(base | changes))


def pretrain(args: argparse.Namespace, out: Path, log=print) -> tuple[Path, dict, list[dict]]:
    """Train ``args.arch`` on CIFAR-10 at ``args.size`` px with the study's recipe for
    ``args.pretrain_min`` minutes and write its weights to ``out/cifar10_<arch>.pth``
    (atomically). Returns the file, the run's row (CIFAR-10 test accuracy included) and its
    history."""
    data = DermData.cifar10(test_as_valid=False)
    if args.pretrain_subset:
        data = data.subset(args.pretrain_subset, n_held_out=args.pretrain_subset)
    log(f"pretraining on {data}")
    data.images(args.size, progress=False)  # decode before the clock starts
    # natural images have an up: small rotations, no vertical flips
    p_args = _train_args(args, budget_min=args.pretrain_min, rotate=10.0, flip_vert=False)
    learn, row, history = train_seed(data, p_args, args.pretrain_seed, log=lambda s: log(f"[CIFAR-10] {s}"))
    scores, _ = score_test(learn, data, p_args)
    path = out / f"cifar10_{args.arch}.pth"
    with atomic_path(path) as tmp:
        torch.save(learn.model.state_dict(), tmp)
    row = {**row, "cifar10_test_acc": scores["acc"], "file": path.name}
    log(f"[CIFAR-10] test accuracy {scores['acc']:.3f}; body written to {path}")
    return path, row, history


def plot_curves(history: pd.DataFrame):
    """Validation accuracy against minutes since the start of the range test, one line per
    arm and seed (head-phase epochs dotted). Returns the Figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    for i, (arm, rows) in enumerate(history.groupby("arm", sort=False)):
        for j, (_, seed_rows) in enumerate(rows.groupby("seed")):
            ax.plot(seed_rows["train_s"] / 60, seed_rows["accuracy"], color=f"C{i}", label=arm if j == 0 else None,
                    marker=".", alpha=0.8)  # fmt: skip
            head = seed_rows[seed_rows["phase"] == "head"]
            if len(head):
                ax.plot(head["train_s"] / 60, head["accuracy"], color=f"C{i}", linestyle=":", marker="o", fillstyle="none")
    ax.set_xlabel("minutes since the range test began (2 CPU cores)")
    ax.set_ylabel("validation accuracy")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("DermaMNIST: fine-tuning a CIFAR-10 body vs training from scratch")
    return fig


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="dermlearn experiment dermamnist-transfer", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS), metavar="ARM",
                    help="arms to run besides 'from scratch' (default: all): " + "; ".join(ARMS))  # fmt: skip
    add_recipe_args(ap, budget_min=3.0)  # --arch (the body's), --size (pretraining's too) .. --rotate (fine-tuning's)
    ap.add_argument("--head-cycles", type=int, default=2, help="SGDR cycles of the head phase (default: %(default)s: 1 + 2 epochs)")
    ap.add_argument("--pretrain-min", type=float, default=12.0, help="wall-clock minutes of CIFAR-10 pretraining")
    ap.add_argument("--pretrain-seed", type=int, default=0)
    ap.add_argument("--pretrain-subset", type=int, help="pretrain on N CIFAR-10 training images drawn at random, every class kept, validating and testing on N each (smoke tests)")
    ap.add_argument("--body", help="a body file written by an earlier run (skips pretraining)")
    ap.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples per run's test scores (the intervals "
                    "reported are over seeds; default: %(default)s)")  # fmt: skip
    ap.add_argument("--subset", type=int, help="fine-tune on N DermaMNIST training images drawn at random, every class kept (smoke tests)")
    ap.add_argument("--quick", action="store_true", help="one seed, 600 images of each set, half a minute per run")
    ap.add_argument("--out", default="results/dermamnist-transfer", help="output folder (default: %(default)s)")
    args = parse_args(ap, argv, {"seeds": [0], "subset": 600, "pretrain_subset": 600, "budget_min": 0.5, "pretrain_min": 0.5,
                                 "lr_find_iters": 30})  # fmt: skip
    if len(set(args.seeds)) != len(args.seeds):
        ap.error(f"--seeds must differ, got {args.seeds}")
    if args.body is not None and not Path(args.body).is_file():
        ap.error(f"--body: no such file: {args.body}")
    arms = [a for a in args.arms if a != "from scratch"] + ["from scratch"]
    rec = Record("dermamnist-transfer", args.out, args)
    pretraining: dict = {"file": Path(args.body).name} if args.body else {}
    if args.body:
        body = Path(args.body)
    else:
        body, pretraining, history = pretrain(args, rec.out)
        rec.add_history(history, arm="CIFAR-10 pretraining")
        rec.save_table(pd.DataFrame([pretraining]), "pretraining")
    data = DermData.dermamnist()
    if args.subset:
        data = data.subset(args.subset)
    print(data)
    data.images(args.size, progress=False)
    classes = list(data.classes)
    runs = []
    for seed in args.seeds:
        for arm in arms[seed % len(arms):] + arms[: seed % len(arms)]:  # no arm always runs first
            from_body, two_phase = ARMS[arm]
            row, history, _ = run_seed(data, _train_args(args), seed, log=lambda s, a=arm: print(f"[{a}] {s}"),
                                       pretrained=body if from_body else None, two_phase=two_phase)  # fmt: skip
            runs.append({"arm": arm, **row})
            rec.add_history(history, arm=arm)
            rec.save_table(pd.DataFrame(runs), "per_seed")  # after every run: a long run's finished arms are kept
    runs_df = pd.DataFrame(runs)
    runs_df["arm"] = pd.Categorical(runs_df["arm"], categories=arms, ordered=True)
    runs_df = runs_df.sort_values(["arm", "seed"], kind="stable").assign(arm=lambda d: d["arm"].astype(str))
    table = summary(runs_df, classes)
    paired = paired_intervals(runs_df, "from scratch")
    rec.save_table(paired, "paired")
    rec.save_figure(plot_arms(table, classes, "DermaMNIST test split: a CIFAR-10 body fine-tuned vs from scratch"), "results.png")
    fine_tune = pd.DataFrame([h for h in rec.history if h["arm"] in arms])
    rec.save_figure(plot_curves(fine_tune), "curves.png")
    fmt = {c: ".3f" for c in table.columns if c not in ("arm", "seeds")}
    md = rec.finish(table, formats=fmt, extra={"data": repr(data), "classes": classes, "arms": arms, "pretraining": pretraining})
    paired_md = markdown_table(paired, {"difference": "+.3f", "low": "+.3f", "high": "+.3f"})
    atomic_write_text(md + "\n## Paired differences to training from scratch (test, 95% t interval over seeds)\n\n" + paired_md,
                      rec.out / "results.md")  # fmt: skip
    print(md, paired_md, sep="\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
