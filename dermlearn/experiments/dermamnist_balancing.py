"""Class balancing on DermaMNIST, the study's comparison on a public benchmark: no balancing,
static oversampling, dynamic balancing, square-root loss weights and class-balanced
resampling, each trained with the study's recipe
(:func:`~dermlearn.experiments.dermamnist.train_seed`: range test, SGDR with doubling cycles,
the best validation epoch kept) within the same wall-clock budget, and each scored once on the same, unbalanced official test split (2,005 images).

Per arm: test accuracy, balanced accuracy, AUC and per-class recall, as means over seeds with
95% Student-t intervals; each arm's paired difference to no balancing (the arms of one seed
share the initial weights, the augmentation seed and the data) with its interval; and the
leading confused pairs of the unbalanced model (``true -> predicted`` counts, both
directions) with how each arm moves them.

What the arms are. ``static`` draws every class up to the largest class's count once (a
fixed, shuffled index list; an epoch is 4.7x the training set). ``dynamic`` is dermlearn's:
class-uniform sampling in the first epoch, then each epoch's sampling weights follow
``1 - recall + floor`` of the validation set (:class:`~dermlearn.DynamicBalance`). The study's
"dynamic" oversampling instead augmented minority images in memory while batches were
drawn: that is ``resample`` (a fresh class-balanced draw with replacement every epoch, as
many items as the training set), since dermlearn augments every batch on the fly in every
arm; what dermlearn's ``dynamic`` adds is the recall feedback. Epochs of unequal cost are
why the budget is wall-clock, not epochs.

    dermlearn experiment dermamnist-balancing [--quick] [--seeds 0 1 2] [--budget-min 3]
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from dermlearn.data import DermData
from dermlearn.evaluation.metrics import confusion_matrix
from dermlearn.io import atomic_write_text

from .arm_stats import paired_intervals, plot_arms, summary
from .dermamnist import run_seed
from .options import add_recipe_args, parse_args
from .record import Record, markdown_table

__all__ = ["ARMS", "confusion_long", "leading_pairs_table", "main"]

# arm: (DermData.dls balance, power of the 1/n loss weights)
ARMS = {
    "none": ("none", None),
    "static oversampling": ("static", None),
    "dynamic (validation recall)": ("dynamic", None),
    "loss weights 1/sqrt(n)": ("loss", 0.5),
    "resampling (the study's dynamic)": ("resample", None),
}


def confusion_long(probs: torch.Tensor, targets: torch.Tensor, classes: list[str]) -> pd.DataFrame:
    """The confusion matrix of argmax predictions as rows ``true, predicted, count`` (every
    cell, zeros included: counts average correctly over seeds)."""
    cm = confusion_matrix(probs, targets, len(classes)).numpy()
    return pd.DataFrame([{"true": classes[a], "predicted": classes[b], "count": int(cm[a, b])}
                         for a in range(len(classes)) for b in range(len(classes))])  # fmt: skip


def leading_pairs_table(confusion: pd.DataFrame, baseline: str = "none", k: int = 5) -> pd.DataFrame:
    """The ``k`` class pairs the ``baseline`` arm confuses most (both directions, summed over
    seeds), and for every arm the mean count over seeds of each direction, ``a -> b`` and
    ``b -> a``, and their sum's change against the baseline."""
    off = confusion[confusion["true"] != confusion["predicted"]]
    mean = off.groupby(["arm", "true", "predicted"], sort=False)["count"].mean()
    base = mean.loc[baseline]
    pairs: dict[tuple[str, str], float] = {}
    for (t, p), v in base.items():
        key = tuple(sorted((t, p)))
        pairs[key] = pairs.get(key, 0.0) + float(v)
    top = sorted(pairs, key=lambda k2: -pairs[k2])[:k]
    rows = []
    for arm in dict.fromkeys(confusion["arm"]):
        row: dict = {"arm": arm}
        for a, b in top:
            ab, ba = float(mean.loc[(arm, a, b)]), float(mean.loc[(arm, b, a)])
            row[f"{a} / {b}"] = f"{ab:.1f} / {ba:.1f}" + ("" if arm == baseline else f" ({ab + ba - pairs[(a, b)]:+.1f})")
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="dermlearn experiment dermamnist-balancing", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS), metavar="ARM",
                    help="arms to run besides 'none' (default: all): " + "; ".join(ARMS))  # fmt: skip
    add_recipe_args(ap, budget_min=3.0)
    ap.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples per run's test scores (the intervals "
                    "reported are over seeds; default: %(default)s)")  # fmt: skip
    ap.add_argument("--pairs", type=int, default=5, help="leading confused pairs reported (default: %(default)s)")
    ap.add_argument("--subset", type=int, help="train on N training images drawn at random, every class kept (smoke tests)")
    ap.add_argument("--quick", action="store_true", help="one seed, 600 training images, 0.5 minutes per arm")
    ap.add_argument("--out", default="results/dermamnist-balancing", help="output folder (default: %(default)s)")
    args = parse_args(ap, argv, {"seeds": [0], "subset": 600, "budget_min": 0.5, "lr_find_iters": 30})
    if len(set(args.seeds)) != len(args.seeds):
        ap.error(f"--seeds must differ, got {args.seeds}")
    arms = ["none"] + [a for a in args.arms if a != "none"]
    rec = Record("dermamnist-balancing", args.out, args)
    data = DermData.dermamnist()
    if args.subset:
        data = data.subset(args.subset)
    print(data)
    data.images(args.size, progress=False)  # decode before any arm's clock starts
    classes = list(data.classes)
    runs, confusion = [], []
    for seed in args.seeds:
        order = arms[seed % len(arms):] + arms[: seed % len(arms)]  # no arm always runs first (or on a warmer machine)
        for arm in order:
            balance, power = ARMS[arm]
            arm_args = argparse.Namespace(**vars(args), stem="auto", lr_mult=1.0, label_smoothing=0.0, balance=balance,
                                          weight_power=power if power is not None else 1.0, head_cycles=2, table=False)  # fmt: skip
            row, history, preds = run_seed(data, arm_args, seed, log=lambda s, a=arm: print(f"[{a}] {s}"))
            runs.append({"arm": arm, **row})
            rec.add_history(history, arm=arm)
            probs = torch.tensor(preds[classes].to_numpy(), dtype=torch.float32)
            targets = torch.tensor(preds["target"].to_numpy())
            confusion.append(confusion_long(probs, targets, classes).assign(arm=arm, seed=seed))
            rec.save_table(pd.DataFrame(runs), "per_seed")  # after every run: a long run's finished arms are kept
            rec.save_table(pd.concat(confusion, ignore_index=True), "confusion")
    runs_df = pd.DataFrame(runs)
    runs_df["arm"] = pd.Categorical(runs_df["arm"], categories=arms, ordered=True)
    runs_df = runs_df.sort_values(["arm", "seed"], kind="stable")
    runs_df["arm"] = runs_df["arm"].astype(str)
    conf = pd.concat(confusion, ignore_index=True)
    table = summary(runs_df, classes)
    paired = paired_intervals(runs_df, "none")
    pairs = leading_pairs_table(conf, k=args.pairs)
    rec.save_table(paired, "paired")
    rec.save_table(pairs, "pairs")
    rec.save_figure(plot_arms(table, classes, "DermaMNIST test split (unbalanced): balancing arms at equal wall-clock"), "results.png")
    fmt = {c: ".3f" for c in table.columns if c not in ("arm", "seeds")}
    md = rec.finish(table, formats=fmt, extra={"data": repr(data), "classes": classes, "arms": arms})
    paired_md = markdown_table(paired, {"difference": "+.3f", "low": "+.3f", "high": "+.3f"})
    pairs_md = markdown_table(pairs)
    atomic_write_text(md + "\n## Paired differences to no balancing (test, 95% t interval over seeds)\n\n"
                                        + paired_md + "\n## Leading confused pairs of no balancing (mean count over seeds, "
                                        "true -> predicted / the reverse; in brackets the change of their sum)\n\n" + pairs_md, rec.out / "results.md")  # fmt: skip
    print(md, paired_md, pairs_md, sep="\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
