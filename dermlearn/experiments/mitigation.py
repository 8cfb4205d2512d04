"""The study's mitigation factors as an ablation on PAD-UFES-20: class balancing (none /
static / dynamic, with or without momentum / loss weights 1/n, 1/sqrt(n) or by effective
numbers), field-of-view crop to the lesion, automatic gamma, the study's fixed gamma,
illumination correction and Shades of Gray colour constancy.

Each seed draws its own three-way split grouped by patient (no patient on two sides):
training, validation (early stopping on its loss, the best epoch's weights kept: every choice
is made there) and test, scored once per arm at the end. Every arm of a seed trains the same
architecture from the same initial weights on the same split; one factor differs from the
baseline (no balancing, no correction, full view), and each arm sees the test photos through
its own preprocessing.

Per arm, the test accuracy, balanced accuracy, AUC and per-class recall as means over seeds
with 95% intervals, and each arm's paired difference to the baseline with its interval and
whether it excludes zero. Because the seeds' splits overlap, the intervals are Nadeau and
Bengio's corrected resampled t (:func:`~dermlearn.experiments.arm_stats.interval`); the plain
t bounds are kept in ``paired.csv`` as ``t low`` / ``t high``. ``pairs.md``: the class pairs
the baseline confuses most and how each arm moves them.

    python -m dermlearn.experiments.mitigation [--quick] [--seeds 0 1 2] [--arms ...] [--arch resnet18] [--epochs 8] [--out DIR]
"""

from __future__ import annotations

import argparse
import copy
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import pandas as pd
import torch

from dermlearn.data import DermData, DynamicBalance
from dermlearn.evaluation.metrics import accuracy, balanced_accuracy
from dermlearn.io import atomic_write_text
from dermlearn.losses import CrossEntropy
from dermlearn.models import create_model
from dermlearn.training.learner import Learner
from dermlearn.training.tracker import EarlyStopping
from dermlearn.transforms import AdjustGamma, AutoGamma, CorrectIllumination, ShadesOfGray

from .arm_stats import paired_intervals, plot_arms, summary
from .dermamnist import split_scores
from .dermamnist_balancing import confusion_long, leading_pairs_table
from .options import QUICK_FIT, add_fit_args, parse_args
from .photometric import lesion_crops
from .record import Record, markdown_table

__all__ = ["ARMS", "MAIN_ARMS", "STUDY_GAMMA", "main", "run_arm"]

STUDY_GAMMA = 1 / 1.35
"""The study's fixed gamma "1.2-1.5 to lift shadows" (the middle, 1.35) in dermlearn's
convention ``out = in ** gamma``: the study's figure is a display gamma, ``in ** (1/g)``."""


class Arm(NamedTuple):
    """One arm of the ablation: how it balances, which corrections it applies (factories of
    pipeline steps, applied to training, validation and test photos alike), whether it trains
    on lesion crops, for ``balance='loss'`` the loss weights'
    :func:`~dermlearn.inverse_frequency_weights` options, for ``balance='dynamic'`` the
    :class:`~dermlearn.DynamicBalance` options."""

    balance: str = "none"
    corrections: tuple[Callable[[], torch.nn.Module], ...] = ()
    crop: bool = False
    weights: dict[str, float] | None = None
    dynamic: dict[str, Any] | None = None


BASELINE = "baseline (none)"

ARMS: dict[str, Arm] = {
    BASELINE: Arm(),
    "balance: static": Arm("static"),
    "balance: resample": Arm("resample"),
    "balance: dynamic": Arm("dynamic"),
    "balance: dynamic, momentum 0.7": Arm("dynamic", dynamic={"momentum": 0.7}),
    "balance: dynamic from training recall": Arm("dynamic", dynamic={"source": "train"}),
    "balance: loss-weighted 1/n": Arm("loss", weights={"power": 1.0}),
    "balance: loss-weighted 1/sqrt(n)": Arm("loss", weights={"power": 0.5}),
    "balance: loss-weighted effective n (beta 0.99)": Arm("loss", weights={"power": 1.0, "beta": 0.99}),
    "FoV: lesion crop": Arm(crop=True),
    "gamma: auto": Arm(corrections=(AutoGamma,)),
    f"gamma: fixed {STUDY_GAMMA:.2f} (the study's 1.35)": Arm(corrections=(functools.partial(AdjustGamma, STUDY_GAMMA),)),
    "illumination correction": Arm(corrections=(CorrectIllumination,)),
    "colour: shades of gray": Arm(corrections=(ShadesOfGray,)),
}

MAIN_ARMS = (BASELINE, "balance: static", "balance: loss-weighted 1/sqrt(n)", "gamma: auto",
             f"gamma: fixed {STUDY_GAMMA:.2f} (the study's 1.35)", "colour: shades of gray", "illumination correction")  # fmt: skip
"""The arms run by default: no balancing or correction, the two balancing arms that kept
accuracy in the first (three-seed, validation-scored) ablation, and every photometric
correction."""


def run_arm(data: DermData, crops: DermData | None, arm: str, args: argparse.Namespace, init: torch.nn.Module, seed: int):
    """Train one arm from ``init`` with early stopping on the validation loss (the best
    epoch's weights kept), then predict the validation and, once, the test photos.

    Returns:
        The learner, its :class:`EarlyStopping` callback, and ``(probs, targets)`` of the
        validation and of the test photos.
    """
    spec = ARMS[arm]
    source = crops if spec.crop else data
    dls = source.dls(bs=args.bs, size=args.size, seed=seed, balance=spec.balance, progress=False,
                     tfms=[make() for make in spec.corrections])  # fmt: skip
    if spec.balance == "dynamic":
        dls.cbs = [DynamicBalance(**(spec.dynamic or {}))]
    loss = CrossEntropy(weight=source.class_weights(**spec.weights) if spec.balance == "loss" else None)
    torch.manual_seed(seed)
    learn = Learner(dls, copy.deepcopy(init), loss_func=loss, metrics=[accuracy, balanced_accuracy], progress=False)
    stop = EarlyStopping(monitor="valid_loss", patience=args.patience, restore_best_weights=True, min_epochs=args.min_epochs)
    learn.fit_one_cycle(args.epochs, args.lr, cbs=[stop])
    valid = learn.get_preds()
    test = learn.get_preds(dl=source.test_dl(bs=args.bs, size=args.size))
    return learn, stop, valid, test


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="dermlearn experiment mitigation", description=__doc__.split("\n\n")[0])
    add_fit_args(ap)
    ap.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                    help="run the whole ablation once per seed (split, initial weights, sampling) and report means "
                         "and intervals over them (default: --seed alone)")  # fmt: skip
    ap.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(MAIN_ARMS), metavar="ARM",
                    help="arms to run (default: the main arms: " + "; ".join(MAIN_ARMS) + "); all arms: " + "; ".join(ARMS))  # fmt: skip
    ap.add_argument("--test-pct", type=float, default=1 / 6, help="share of the photos held out as the test set, by patient (default: 1/6)")
    ap.add_argument("--valid-pct", type=float, default=1 / 6, help="share of the photos in the validation set, by patient (default: 1/6)")
    ap.add_argument("--patience", type=int, default=3, help="early stopping: epochs without a lower validation loss (default: %(default)s)")
    ap.add_argument("--min-epochs", type=int, default=0,
                    help="early stopping: never stop before this many epochs, e.g. past one-cycle's high-rate epochs "
                         "(default: %(default)s, as the recorded run)")  # fmt: skip
    ap.add_argument("--out", default="results/mitigation", help="output folder (default: %(default)s)")
    args = parse_args(ap, argv, QUICK_FIT)
    seeds = args.seeds or [args.seed]
    if len(set(seeds)) != len(seeds):
        ap.error(f"--seeds must differ, got {seeds}")
    arms = [BASELINE] + [a for a in dict.fromkeys(args.arms) if a != BASELINE]
    rec = Record("mitigation", args.out, args)
    runs, confusion, described, sizes = [], [], [], []
    for seed in seeds:
        try:
            data = DermData.pad_ufes_20(seed=seed, valid_pct=args.valid_pct, test_pct=args.test_pct)
        except ValueError as e:
            ap.error(str(e))
        print(f"seed {seed}: {data}")
        described.append(repr(data))
        n = {w: len(data.indices(w)) for w in ("train", "valid", "test")}
        sizes.append(n)
        presize = max(args.size, round(1.25 * args.size))
        crops = data.with_images(presize, lesion_crops(data, presize)) if any(ARMS[a].crop for a in arms) else None
        torch.manual_seed(seed)
        init = create_model(args.arch, data.c)
        classes = list(data.classes)
        for arm in arms:
            learn, stop, (vp, vt), (tp, tt) = run_arm(data, crops, arm, args, init, seed)
            rec.add_history(learn.recorder.values, seed=seed, arm=arm)
            row = {"seed": seed, "arm": arm, "best_epoch": stop.best_epoch, "epochs_run": len(learn.recorder.values), **n}
            row |= {f"valid_{k}": v for k, v in split_scores(vp, vt, classes).items()} | split_scores(tp, tt, classes)
            row["errors"] = int((tp.argmax(1) != tt).sum())
            runs.append(row)
            confusion.append(confusion_long(tp, tt, classes).assign(arm=arm, seed=seed))
            print(f"[seed {seed}, {arm}] best epoch {stop.best_epoch}; valid accuracy {row['valid_acc']:.3f}; "
                  f"test accuracy {row['acc']:.3f}, balanced accuracy {row['balanced_accuracy']:.3f}, AUC {row['auc']:.3f}")
            rec.save_table(pd.DataFrame(runs), "runs")  # after every arm: a long run's finished arms are kept
    runs_df, conf = pd.DataFrame(runs), pd.concat(confusion, ignore_index=True)
    rec.save_table(conf, "confusion")
    # the seeds' splits overlap: widen the intervals by the test / training ratio (Nadeau and Bengio)
    ratio = float(sum(s["test"] for s in sizes) / sum(s["train"] + s["valid"] for s in sizes)) if len(seeds) > 1 else None
    table = summary(runs_df, classes, ratio)
    table["errors"] = runs_df.groupby("arm", sort=False)["errors"].mean().to_numpy()
    title = f"PAD-UFES-20 test photos: mitigation arms over {len(seeds)} seed(s)"
    rec.save_figure(plot_arms(table, classes, title, "95% corrected resampled t interval" if ratio else "one seed"), "results.png")
    fmt = {c: ".3f" for c in table.columns if c not in ("arm", "seeds", "errors")} | {"errors": ".1f"}
    extra = {"data": described, "seeds": seeds, "sizes": sizes, "classes": classes, "arms": arms, "test_train_ratio": ratio,
             "intervals": "95% t over seeds, widened by Nadeau and Bengio's correction" if ratio else "one seed: none"}  # fmt: skip
    md = rec.finish(table, formats=fmt, extra=extra)
    if len(arms) > 1:
        paired = paired_intervals(runs_df, BASELINE, ratio)
        plain = paired_intervals(runs_df, BASELINE)
        paired["t low"], paired["t high"] = plain["low"], plain["high"]
        rec.save_table(paired, "paired")
        pairs = leading_pairs_table(conf, BASELINE, k=3)
        rec.save_table(pairs, "pairs")
        atomic_write_text(markdown_table(paired, {c: "+.3f" for c in ("difference", "low", "high", "t low", "t high")}), rec.out / "paired.md")
        atomic_write_text(markdown_table(pairs), rec.out / "pairs.md")
    print(md)
    print(f"wrote {rec.out}: results.csv/.md/.png, runs.csv, paired.csv/.md, pairs.csv/.md, confusion.csv, history.csv, config.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
