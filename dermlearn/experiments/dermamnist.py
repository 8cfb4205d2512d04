"""DermaMNIST, the field's public benchmark: the study's recipe from random weights at 28 px,
trained on ``train``, every choice made on ``valid``, ``test`` scored once, several seeds.

Per seed: an LR range test picks the rate (``valley``), SGDR with doubling cycles trains as
many whole cycles as the wall-clock budget holds (planned from a timed first pass, guarded
by :class:`~dermlearn.TimeBudget`), and the epoch with the best validation accuracy is kept
(its weights restored); each finished cycle's weights are kept too (a snapshot ensemble,
Huang et al. 2017). The validation split alone then chooses how the test split is
predicted: the best epoch or the mean of the last k snapshots, each with or without
test-time augmentation (:func:`choose_on_valid`). The test split is then scored once: ACC
and AUC as MedMNIST's evaluator computes them (argmax accuracy; the mean over classes of one-vs-rest ROC AUC of
the reported probabilities), balanced accuracy and per-class recall, each with a 95% BCa
bootstrap interval over the 2,005 test images. The results table puts the published 28-px
rows beside dermlearn's, and the mean over seeds with a t interval.

    dermlearn experiment dermamnist [--quick] [--seeds 0 1 2] [--budget-min 30] [--arch resnet18]
                                    [--no-snapshots] [--tta 0]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch

from dermlearn.callback import Callback, CancelFitException
from dermlearn.data import BatchAugment, DermData
from dermlearn.evaluation.bootstrap import bootstrap_ci
from dermlearn.evaluation.metrics import accuracy, balanced_accuracy, per_class_recall, roc_auc
from dermlearn.losses import CrossEntropy
from dermlearn.models import STEM_CHOICE, create_model, default_stem
from dermlearn.seed import set_seed
from dermlearn.training.learner import Learner
from dermlearn.training.lr_finder import valley
from dermlearn.training.snapshots import SnapshotEnsemble
from dermlearn.training.time_budget import TimeBudget
from dermlearn.training.tracker import EarlyStopping
from dermlearn.transforms.normalize import IMAGENET_MEAN, IMAGENET_STD

from .options import add_recipe_args, parse_args
from .record import Record

__all__ = ["PUBLISHED", "choose_on_valid", "main", "plan_cycles", "run_seed", "score_test", "split_scores", "t_interval",
           "train_seed"]

# published DermaMNIST test results at 28 px (ACC, AUC)
PUBLISHED = [
    {"method": "ResNet-18 (28), from scratch", "source": "MedMNIST v2 (Yang et al., Sci Data 2023)", "acc": 0.735, "auc": 0.917},
    {"method": "ResNet-18 (28), end to end", "source": "MedMNIST+ (Doerrich et al., Sci Rep 2025)", "acc": 0.734, "auc": 0.884},
    {"method": "VGG16 (28), ImageNet-pretrained, best 28-px row", "source": "MedMNIST+ (Doerrich et al., Sci Rep 2025)",
     "acc": 0.766, "auc": 0.927},
]  # fmt: skip


def plan_cycles(epoch_s: float, budget_s: float, cycle_mult: int = 2, max_cycles: int = 6, max_len: int = 8) -> tuple[int, int]:
    """SGDR cycles that fill a budget: ``(n_cycles, cycle_len)`` whose epochs
    (``cycle_len * (1 + cycle_mult + ... + cycle_mult**(n_cycles - 1))``, at ``epoch_s``
    seconds each) fit in ``budget_s`` and are the most epochs that do; of equal totals, the
    most cycles. At least ``(1, 1)``."""
    best = (0, 1, 1)  # (epochs, n_cycles, cycle_len)
    for length in range(1, max_len + 1):
        for n in range(1, max_cycles + 1):
            epochs = length * sum(cycle_mult**i for i in range(n))
            if epochs * epoch_s <= budget_s and (epochs, n) > best[:2]:
                best = (epochs, n, length)
    return best[1], best[2]


# Student-t 0.975 quantiles for 1..30 degrees of freedom (two-sided 95% intervals)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean of ``values`` (one per seed) and its 95% Student-t interval (1.96 beyond 31
    values); NaN bounds for a single value."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    t = _T975[len(x) - 2] if len(x) - 1 <= len(_T975) else 1.96
    half = t * float(x.std(ddof=1)) / math.sqrt(len(x))
    return mean, mean - half, mean + half


def split_scores(probs: torch.Tensor, targets: torch.Tensor, classes: list[str], n_boot: int = 0) -> dict[str, float]:
    """Accuracy (``acc``), ``auc``, ``balanced_accuracy`` and each class's recall
    (``recall_<class>``) of ``probs`` ``(N, C)`` against ``targets`` ``(N,)``; with ``n_boot``
    resamples, each with its bootstrap bounds (``<name>_low`` / ``<name>_high``)."""
    out: dict[str, float] = {}
    metrics = {"acc": accuracy, "auc": roc_auc, "balanced_accuracy": balanced_accuracy}
    for c, name in enumerate(classes):
        metrics[f"recall_{name}"] = lambda p, t, c=c: per_class_recall(p, t)[c]
    for name, m in metrics.items():
        if n_boot:
            v, lo, hi = bootstrap_ci(m, probs, targets, n=n_boot)
            out.update({name: v, f"{name}_low": lo, f"{name}_high": hi})
        else:
            out[name] = float(m(probs, targets))
    return out


class _BatchTimer(Callback):
    """Times ``n`` training batches after ``skip`` warm-up ones (the first batches of a fit
    allocate buffers and start threads, and ran 30 % slower than the rest), then ends the fit.

    Attributes:
        batch_s: Mean seconds per timed batch (None until ``skip + n`` batches ran).
    """

    def __init__(self, n: int, skip: int = 3) -> None:
        super().__init__()
        self.n, self.skip, self.batch_s = n, skip, None
        self._ends: list[float] = []

    def after_batch(self) -> None:
        if not self.learn.training:
            return
        self._ends.append(time.perf_counter())
        if len(self._ends) == self.skip + self.n:
            self.batch_s = (self._ends[-1] - self._ends[self.skip - 1]) / self.n if self.skip else None
            raise CancelFitException()


def train_seed(data: DermData, args: argparse.Namespace, seed: int, log=print, cbs: list[Callback] | None = None,
               pretrained: str | os.PathLike | None = None, two_phase: bool = False, tfms: Sequence[torch.nn.Module] = (),
               train_steps: Sequence[torch.nn.Module] = (), train_steps_at: int = 0,
               snapshots: SnapshotEnsemble | None = None) -> tuple[Learner, dict, list[dict]]:  # fmt: skip
    """Train one seed within ``args.budget_min`` minutes (range test included); returns the
    learner (its weights those of the best validation epoch), the training facts of the
    results row and the per-epoch history (``phase`` 'head' or 'all'; ``train_s``, the
    seconds from the start of the range test to the end of the epoch).

    Args:
        data: Training and validation splits (the test split is not touched).
        args: The experiment's options (``arch``, ``stem``, ``size``, ``bs``, ``budget_min``,
            ``lr_mult``, ``lr_find_iters``, ``probe_batches``, ``rotate``,
            ``label_smoothing``, ``balance``, ``table``; with ``balance='loss'``,
            ``weight_power``; with ``two_phase``, ``head_cycles``; ``flip_vert``, default
            True: dermoscopy has no up, natural images do).
        seed: Seed of the initial weights (those not loaded), sampling and augmentation.
        log: Where the progress lines go.
        cbs: Callbacks added to the main SGDR fit (e.g. a benchmark's per-epoch snapshots).
        pretrained: A weights file for the body (``create_model(..., pretrained=path)``);
            None: random initialisation.
        two_phase: The study's fine-tuning recipe: the range test on the frozen body, the
            new head alone (``args.head_cycles`` SGDR cycles of 1, 2.. epochs), then every
            layer with discriminative rates ``slice(lr / 100, lr / 10)``. False: every layer
            at the range test's rate from the start.
        tfms: The model's preprocessing (``DermData.dls(tfms=...)``: applied to every
            batch, in training and evaluation, and kept with the model), e.g. corrections.
        train_steps: Training-only uint8 steps on every training batch (e.g. photometric
            augmentation), before the geometric augmentation.
        train_steps_at: How many of ``tfms`` run before ``train_steps`` (0: they run first).
        snapshots: When given, its ``epochs`` are set to the ends of the planned SGDR cycles
            and it is added to the main fit: it then holds each finished cycle's weights.
    """
    set_seed(seed)
    augment = BatchAugment(args.size, flip_vert=getattr(args, "flip_vert", True), max_rotate=args.rotate, max_zoom=1.2,
                           max_warp=0.1, seed=seed, mean=IMAGENET_MEAN, std=IMAGENET_STD)  # fmt: skip
    dls = data.dls(bs=args.bs, size=args.size, presize=args.size, augment=augment, balance=args.balance, seed=seed,
                   progress=False, tfms=list(tfms))  # fmt: skip
    dls.train_tfms[train_steps_at:train_steps_at] = list(train_steps)
    stem = default_stem(args.arch, args.size) if args.stem == "auto" else args.stem

    def model() -> torch.nn.Module:
        return create_model(args.arch, data.c, stem=stem, pretrained=pretrained if pretrained is not None else False)

    weight = data.class_weights(power=getattr(args, "weight_power", 1.0)) if args.balance == "loss" else None
    learn = Learner(dls, model(), loss_func=CrossEntropy(label_smoothing=args.label_smoothing, weight=weight),
                    metrics=[accuracy, balanced_accuracy, roc_auc], progress="table" if args.table else False)  # fmt: skip
    t0 = time.perf_counter()
    if two_phase:
        learn.freeze()
    res = learn.lr_find(num_it=args.lr_find_iters, suggest_funcs=(valley,), show_plot=False)
    lr = float(res.suggestions["valley"]) * args.lr_mult
    # time a few training batches of every layer on a throwaway copy, then plan whole SGDR cycles
    probe = Learner(dls, model(), progress=False)
    skip = min(3, len(dls.train) - 1)
    timer = _BatchTimer(max(1, min(len(dls.train) - skip, args.probe_batches)), skip)
    t1 = time.perf_counter()
    probe.fit(1, lr, cbs=[timer])
    # a loader too short to skip warm-up batches: the whole pass, warm-up included
    batch_s = timer.batch_s if timer.batch_s is not None else (time.perf_counter() - t1) / len(dls.train)
    epoch_s = batch_s * (len(dls.train) + 0.5 * len(dls.valid))
    history: list[dict] = []
    head_epochs = 0
    lr_max: float | slice = lr
    if two_phase:
        head_start = time.perf_counter() - t0
        head_budget = max(args.budget_min * 60 - head_start, 1.0)
        learn.fit_sgdr(args.head_cycles, 1, lr_max=lr, cycle_mult=2, cbs=[TimeBudget(head_budget)])
        head_epochs = len(learn.recorder.values)
        history += _history(learn, seed, head_start, "head")
        learn.unfreeze()
        lr_max = slice(lr / 100, lr / 10)
    # what is left of the budget for training; at least one epoch (a budget the range test
    # already spent still trains one cycle, and the table's train_min shows the overrun)
    budget = max(args.budget_min * 60 - (time.perf_counter() - t0), epoch_s)
    # plan with 15% to spare, for epochs slower than the timed batches (validation, metrics,
    # the epoch's own noise): seed 0 of the first 20-minute run timed 23 s, then took 24-29 s
    # an epoch, and the budget cut its last cycle at epoch 42 of 49, before the rate had
    # annealed; with warm-up skipped, 13 s timed and 13-16 s run. (Timing the warm-up too had
    # the opposite effect: 19 s estimated, 13-15 s run.)
    cycles, cycle_len = plan_cycles(epoch_s, 0.85 * budget)
    rates = f"slice({lr / 100:.2e}, {lr / 10:.2e}) after {head_epochs} head epoch(s)" if two_phase else f"{lr:.2e}"
    log(f"[seed {seed}] lr {rates} (valley x {args.lr_mult:g}), about {epoch_s:.0f} s an epoch: {cycles} SGDR cycles of "
        f"{cycle_len} x 1, 2, 4.. epochs ({cycle_len * (2**cycles - 1)} epochs) in the {args.budget_min:g}-minute budget")  # fmt: skip
    # the epoch with the best validation accuracy is kept; nothing stops early but the budget
    best = EarlyStopping(monitor="accuracy", patience=10**9, restore_best_weights=True)
    main_start = time.perf_counter() - t0  # the range test, the timing pass and any head phase
    extra = list(cbs or [])
    if snapshots is not None:
        snapshots.epochs = SnapshotEnsemble.cycle_ends(cycles, cycle_len, cycle_mult=2)
        extra.append(snapshots)
    learn.fit_sgdr(cycles, cycle_len, lr_max=lr_max, cycle_mult=2, cbs=[best, TimeBudget(budget), *extra])
    train_s = time.perf_counter() - t0
    history += _history(learn, seed, main_start, "all")
    row = {"seed": seed, "arch": args.arch, "stem": stem if args.arch in STEM_CHOICE else "3x3 (its own)",  # ResNet-20/32/56: small by design
           "init": "pretrained" if pretrained is not None else "random", "lr": lr, "head_epochs": head_epochs,
           "cycles": cycles, "cycle_len": cycle_len, "epochs": len(learn.recorder.values),
           "best_epoch": best.best_epoch, "valid_acc": best.best, "train_min": round(train_s / 60, 1)}  # fmt: skip
    return learn, row, history


def _history(learn: Learner, seed: int, start_s: float, phase: str) -> list[dict]:
    walls = start_s + np.cumsum([r["time"] for r in learn.recorder.values])
    return [{"seed": seed, "phase": phase, **r, "train_s": round(float(w), 1)} for r, w in zip(learn.recorder.values, walls)]


def score_test(learn: Learner, data: DermData, args: argparse.Namespace,
               predict: Callable[[Iterable], tuple[torch.Tensor, torch.Tensor]] | None = None) -> tuple[dict, pd.DataFrame]:  # fmt: skip
    """Score the test split once: ACC, AUC, balanced accuracy and per-class recall (with
    bootstrap intervals when ``args.bootstrap``), and the predictions (one row per test
    image: each class's probability and the target). ``predict`` maps a loader to
    ``(probs, targets)`` (default: ``learn.get_preds``; :func:`choose_on_valid` gives one)."""
    predict = predict if predict is not None else (lambda dl: learn.get_preds(dl=dl))
    probs, targets = predict(data.test_dl(bs=256, size=args.size, presize=args.size))
    preds = pd.DataFrame(probs.numpy(), columns=data.classes).assign(target=targets.numpy())
    return split_scores(probs, targets, data.classes, args.bootstrap), preds


def choose_on_valid(learn: Learner, snapshots: SnapshotEnsemble | None, n_tta: int
                    ) -> tuple[Callable[[Iterable], tuple[torch.Tensor, torch.Tensor]], str, dict[str, float]]:  # fmt: skip
    """Choose, by validation accuracy alone, how the test split will be predicted: the
    best validation epoch's weights (``learn``'s), or the mean of the last ``k`` SGDR cycle
    snapshots for each ``k`` taken; each plain and, with ``n_tta`` >= 1, with test-time
    augmentation (``n_tta`` augmented passes blended with the plain one, beta 0.25). Of
    equal accuracies the first in that order wins: fewer models, no augmentation.

    Returns:
        ``(predict, chosen, valid_acc)``: ``predict(dl) -> (probs, targets)`` for the
        chosen way, its name, and every candidate's validation accuracy by name
        (``'best epoch'``, ``'best epoch + TTA'``, ``'last 2 snapshots'``, ...).
    """
    # candidates in order of preference, each (name, snapshots averaged (0: the best epoch), TTA passes)
    passes = [0] + ([n_tta] if n_tta else [])
    taken = len(snapshots.snapshots) if snapshots is not None else 0
    candidates = [(f"best epoch{' + TTA' if n else ''}", 0, n) for n in passes]
    candidates += [(f"last {k} snapshot{'s' if k > 1 else ''}{' + TTA' if n else ''}", k, n)
                   for k in range(1, taken + 1) for n in passes]  # fmt: skip
    best_epoch = {n: learn.tta(n=n) if n else learn.get_preds() for n in passes}
    targets = best_epoch[0][1]
    # each snapshot predicted once per kind of pass: (taken, N, C), oldest first
    each = {n: snapshots.get_preds(learn, n_tta=n, per_snapshot=True)[0].double() for n in passes} if taken else {}
    valid_acc = {name: float(accuracy(best_epoch[n][0] if k == 0 else each[n][-k:].mean(0), targets))
                 for name, k, n in candidates}  # fmt: skip
    chosen, k, n = max(candidates, key=lambda c: valid_acc[c[0]])  # max keeps the first of equals

    def predict(dl: Iterable) -> tuple[torch.Tensor, torch.Tensor]:
        if k == 0:
            return learn.tta(dl, n=n) if n else learn.get_preds(dl=dl)
        return snapshots.get_preds(learn, dl, last=k, n_tta=n)

    return predict, chosen, valid_acc


def run_seed(data: DermData, args: argparse.Namespace, seed: int, log=print, cbs: list[Callback] | None = None,
             pretrained: str | os.PathLike | None = None, two_phase: bool = False) -> tuple[dict, list[dict], pd.DataFrame]:  # fmt: skip
    """Train and score one seed (:func:`train_seed`, then the test split once): its results
    row, per-epoch history and test predictions (one row per test image: target and each
    class's probability). With ``args.snapshots`` (the SGDR cycles' ends kept) or
    ``args.tta`` >= 1, :func:`choose_on_valid` picks how the test split is predicted; the
    row then names the choice (``chosen``), every candidate's validation accuracy
    (``valid_acc[<candidate>]``) and the seconds the choice and the test scoring took
    (``select_s``)."""
    snapshots = SnapshotEnsemble() if getattr(args, "snapshots", False) else None
    n_tta = getattr(args, "tta", 0)
    learn, row, history = train_seed(data, args, seed, log, cbs, pretrained, two_phase, snapshots=snapshots)
    predict = None
    t0 = time.perf_counter()
    if snapshots is not None or n_tta:
        predict, chosen, valid_acc = choose_on_valid(learn, snapshots, n_tta)
        row["chosen"] = chosen
        row.update({f"valid_acc[{name}]": v for name, v in valid_acc.items()})
        log(f"[seed {seed}] chosen on valid: {chosen} (accuracy {valid_acc[chosen]:.3f}; best epoch alone "
            f"{valid_acc['best epoch']:.3f})")  # fmt: skip
    scores, preds = score_test(learn, data, args, predict)
    if predict is not None:
        row["select_s"] = round(time.perf_counter() - t0, 1)
    row.update(scores)
    log(f"[seed {seed}] test ACC {row['acc']:.3f}, AUC {row['auc']:.3f}, balanced {row['balanced_accuracy']:.3f} "
        f"(best valid epoch {row['best_epoch']}, {row['train_min']} min)")  # fmt: skip
    return row, history, preds.assign(seed=seed)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="dermlearn experiment dermamnist", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    add_recipe_args(ap, budget_min=30.0, unit="seed")
    ap.add_argument("--stem", choices=["auto", "imagenet", "small"], default="auto")
    ap.add_argument("--lr-mult", type=float, default=1.0, help="multiplies the range test's valley")
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--snapshots", action=argparse.BooleanOptionalAction, default=True,
                    help="keep each SGDR cycle's final weights; the validation split chooses between the best epoch "
                    "and the mean of the last k snapshots (default: on)")  # fmt: skip
    ap.add_argument("--tta", type=int, default=4, help="augmented passes of test-time augmentation, a candidate the "
                    "validation split may choose (0: none; default: %(default)s)")  # fmt: skip
    ap.add_argument("--balance", choices=["none", "static", "resample", "dynamic", "loss"], default="none")
    ap.add_argument("--weight-power", type=float, default=1.0, help="with --balance loss: class weights 1/n**POWER "
                    "(0.5: square root; default: %(default)s)")  # fmt: skip
    ap.add_argument("--bootstrap", type=int, default=1000, help="resamples of the test set for the 95%% intervals")
    ap.add_argument("--subset", type=int, help="train on N training images drawn at random, every class kept (smoke tests)")
    ap.add_argument("--table", action="store_true", help="print the epoch table")
    ap.add_argument("--quick", action="store_true", help="one seed, 600 training images, a 1-minute budget")
    ap.add_argument("--out", default="results/dermamnist", help="output folder (default: %(default)s)")
    args = parse_args(ap, argv, {"seeds": [0], "subset": 600, "budget_min": 1.0, "bootstrap": 100, "lr_find_iters": 30})
    rec = Record("dermamnist", args.out, args)
    data = DermData.dermamnist()
    if args.subset:
        data = data.subset(args.subset)
    print(data)
    rows = []
    for seed in args.seeds:
        row, history, preds = run_seed(data, args, seed)
        rows.append(row)
        rec.add_history(history)
        rec.save_table(preds, f"test_predictions_seed{seed}")  # scored once; kept for later reading
        rec.save_table(pd.DataFrame(rows), "per_seed")  # after every seed: a long run's finished seeds are kept
    per_seed = pd.DataFrame(rows)
    rec.save_figure(plot_history(pd.DataFrame(rec.history)), "history.png")
    table = summary_table(per_seed)
    md = rec.finish(table, formats={"ACC": ".3f", "AUC": ".3f", "balanced accuracy": ".3f"}, missing={"balanced accuracy": "-"},
                    extra={"data": repr(data), "published": PUBLISHED})  # fmt: skip
    print(md)
    return 0


def plot_history(history: pd.DataFrame):
    """Validation accuracy against training minutes, one line per seed, with the published
    28-px test accuracies as dashed references (they are test figures: the lines are
    validation ones). Returns the Figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    for seed, rows in history.groupby("seed"):
        ax.plot(rows["train_s"] / 60, rows["accuracy"], label=f"dermlearn, seed {seed} (valid)")
    for p, style in zip(PUBLISHED, (":", "-.", "--")):
        ax.axhline(p["acc"], color="gray", linestyle=style, linewidth=1, label=f"{p['method']}: {p['acc']:.3f} (test)")
    ax.set_xlabel("training time, minutes (2 CPU cores)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0.6, None)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def summary_table(per_seed: pd.DataFrame) -> pd.DataFrame:
    """The published rows, then dermlearn's mean over seeds with its t interval."""
    rows = [{"method": p["method"], "source": p["source"], "ACC": p["acc"], "AUC": p["auc"], "balanced accuracy": None,
             "interval (95%)": "not reported"} for p in PUBLISHED]  # fmt: skip
    acc, auc, bal = (t_interval(per_seed[c].tolist()) for c in ("acc", "auc", "balanced_accuracy"))
    n = len(per_seed)
    arch, stem = per_seed["arch"].iloc[0], per_seed["stem"].iloc[0]
    model = f"{arch} ({stem} stem)" if stem in ("imagenet", "small") else arch
    rows.append({"method": f"dermlearn, study's recipe, {model}, random init",
                 "source": f"this repository, mean of {n} seed(s)", "ACC": acc[0], "AUC": auc[0], "balanced accuracy": bal[0],
                 "interval (95%)": "n/a (1 seed)" if n < 2 else
                 f"ACC [{acc[1]:.3f}, {acc[2]:.3f}], AUC [{auc[1]:.3f}, {auc[2]:.3f}] over seeds"})  # fmt: skip
    return pd.DataFrame(rows)


if __name__ == "__main__":
    raise SystemExit(main())
