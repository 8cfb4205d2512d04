"""The study's mitigation factors as an ablation (PAD-UFES-20): class balancing (none /
static / dynamic, with or without momentum / loss weights 1/n, 1/sqrt(n) or by effective
numbers), field-of-view crop to the lesion, automatic gamma, illumination correction and
Shades of Gray colour constancy.

Every arm trains the same architecture for the same epochs from the same initial weights,
on the same split (grouped by patient) and seed; one factor differs from the baseline
(no balancing, no correction, full view). Each arm is evaluated on the validation photos
as they are, with its own preprocessing. Reports accuracy and balanced accuracy per arm
(mean and standard deviation over seeds with ``--seeds``), and the confused pairs that
moved most against the baseline (symmetric error counts, as the study's pair table);
``paired.csv`` / ``paired.md`` give each arm's differences to the baseline seed by seed.

    python -m dermlearn.experiments.mitigation [--quick] [--seeds 0 1 2] [--arch resnet18] [--epochs 8] [--out DIR]
"""

from __future__ import annotations

import argparse
import copy
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from dermlearn.data import DermData, DynamicBalance
from dermlearn.evaluation.metrics import accuracy, balanced_accuracy, confusion_matrix, roc_auc
from dermlearn.io import atomic_write_text
from dermlearn.losses import CrossEntropy
from dermlearn.models import create_model
from dermlearn.training.learner import Learner
from dermlearn.transforms import AutoGamma, CorrectIllumination, ShadesOfGray

from .options import QUICK_FIT, add_fit_args, parse_args
from .photometric import lesion_crops
from .plots import plot_bars
from .record import Record, markdown_table

#: The scores of each arm, on the validation photos.
SCORES = ("accuracy", "balanced accuracy", "AUC")

class Arm(NamedTuple):
    """One arm of the ablation: how it balances, which corrections it applies, whether it
    trains on lesion crops, for ``balance='loss'`` the loss weights'
    :func:`~dermlearn.inverse_frequency_weights` options, for ``balance='dynamic'`` the
    :class:`~dermlearn.DynamicBalance` options."""

    balance: str = "none"
    corrections: tuple[type, ...] = ()
    crop: bool = False
    weights: dict[str, float] | None = None
    dynamic: dict[str, Any] | None = None


ARMS: dict[str, Arm] = {
    "baseline (none)": Arm(),
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
    "illumination correction": Arm(corrections=(CorrectIllumination,)),
    "colour: shades of gray": Arm(corrections=(ShadesOfGray,)),
}


def pair_counts(cm: np.ndarray, vocab: list[str]) -> dict[str, int]:
    """Symmetric error counts ``cm[a, b] + cm[b, a]`` of every unordered pair ``'a / b'``."""
    return {f"{vocab[a]} / {vocab[b]}": int(cm[a, b] + cm[b, a]) for a in range(len(vocab)) for b in range(a + 1, len(vocab))}


def moved_pairs(base: dict[str, int], arm: dict[str, int], k: int = 2) -> str:
    """The ``k`` pairs whose error count changed most against the baseline, e.g.
    ``'BCC / SCC -3, ACK / SEK +2'`` (``'-'`` when none changed)."""
    delta = sorted(((arm[p] - base[p], p) for p in base if arm[p] != base[p]), key=lambda t: (-abs(t[0]), t[1]))
    return ", ".join(f"{p} {d:+d}" for d, p in delta[:k]) or "-"


def run_arm(data: DermData, crops: DermData | None, arm: str, args, init: torch.nn.Module, seed: int):
    """Train one arm from ``init``; returns the learner and its validation probabilities and targets."""
    spec = ARMS[arm]
    source = crops if spec.crop else data
    dls = source.dls(bs=args.bs, size=args.size, seed=seed, balance=spec.balance, progress=False,
                     tfms=[c() for c in spec.corrections])  # fmt: skip
    if spec.balance == "dynamic":
        dls.cbs = [DynamicBalance(**(spec.dynamic or {}))]
    loss = CrossEntropy(weight=source.class_weights(**spec.weights) if spec.balance == "loss" else None)
    torch.manual_seed(seed)
    learn = Learner(dls, copy.deepcopy(init), loss_func=loss, metrics=[accuracy, balanced_accuracy], progress=False)
    learn.fit_one_cycle(args.epochs, args.lr)
    probs, targs = learn.get_preds()
    return learn, probs, targs


def summarize(runs: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per arm (in run order) from the per-seed rows: mean accuracy, balanced
    accuracy and ROC AUC (each with its standard deviation over seeds when there are several), mean
    errors, and the pairs whose error count, summed over seeds, moved most against the
    first arm's."""
    arms = list(dict.fromkeys(runs["arm"]))
    g = runs.groupby("arm", sort=False)
    table = pd.DataFrame({"arm": arms})
    for col in SCORES:
        table[col] = g[col].mean()[arms].to_numpy()
        if runs["seed"].nunique() > 1:
            table[f"{col} sd"] = g[col].std()[arms].to_numpy()
    table["errors"] = g["errors"].mean()[arms].to_numpy()
    summed = pairs.drop(columns="seed").groupby("arm", sort=False).sum()
    base = summed.loc[arms[0]].to_dict()
    table["pairs that moved (vs baseline)"] = ["-" if a == arms[0] else moved_pairs(base, summed.loc[a].to_dict()) for a in arms]
    return table


def paired_differences(runs: pd.DataFrame) -> pd.DataFrame:
    """Each arm against the first arm (the baseline) seed by seed: the arms of one seed share
    the split and the initial weights, so their difference is paired and steadier than the
    spread of either arm over seeds. One row per arm after the first; for each score, the mean
    difference over seeds (``'Δ accuracy'``), the differences per seed in seed order
    (``'accuracy per seed'``, e.g. ``'+0.043 -0.078 +0.000'``) and the number of seeds on
    which the arm scored higher (``'accuracy higher'``); ``seeds`` is their number."""
    arms = list(dict.fromkeys(runs["arm"]))
    wide = {col: runs.pivot(index="seed", columns="arm", values=col) for col in SCORES}
    rows = []
    for arm in arms[1:]:
        row: dict[str, Any] = {"arm": arm}
        for col, w in wide.items():
            d = w[arm] - w[arms[0]]
            row[f"Δ {col}"] = float(d.mean())
            row[f"{col} per seed"] = " ".join(f"{v:+.3f}" for v in d)
            row[f"{col} higher"] = int((d > 0).sum())
        row["seeds"] = len(wide[SCORES[0]])
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="dermlearn experiment mitigation", description=__doc__.split("\n\n")[0])
    add_fit_args(ap)
    ap.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                    help="run the whole ablation once per seed (split, initial weights, sampling) and report the "
                         "mean and standard deviation over them (default: --seed alone)")  # fmt: skip
    ap.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS), metavar="ARM",
                    help="arms to run (default: all): " + "; ".join(ARMS))  # fmt: skip
    ap.add_argument("--out", default="results/mitigation", help="output folder (default: %(default)s)")
    args = parse_args(ap, argv, QUICK_FIT)
    seeds = args.seeds or [args.seed]
    if len(set(seeds)) != len(seeds):
        ap.error(f"--seeds must differ, got {seeds}")
    arms = ["baseline (none)"] + [a for a in args.arms if a != "baseline (none)"]
    rec = Record("mitigation", args.out, args)
    runs, all_pairs, described, n_valid = [], [], [], []
    for seed in seeds:
        data = DermData.pad_ufes_20(seed=seed)
        print(f"seed {seed}: {data}")
        described.append(repr(data))
        presize = max(args.size, round(1.25 * args.size))
        crops = data.with_images(presize, lesion_crops(data, presize)) if any(ARMS[a].crop for a in arms) else None
        torch.manual_seed(seed)
        init = create_model(args.arch, data.c)
        vocab = list(data.classes)
        for arm in arms:
            learn, probs, targs = run_arm(data, crops, arm, args, init, seed)
            rec.add_history(learn.recorder.values, seed=seed, arm=arm)
            pairs = pair_counts(confusion_matrix(probs, targs, len(vocab)).numpy(), vocab)
            all_pairs.append({"seed": seed, "arm": arm, **pairs})
            acc, bal, auc = (float(m(probs, targs)) for m in (accuracy, balanced_accuracy, roc_auc))
            runs.append({"seed": seed, "arm": arm, "accuracy": acc, "balanced accuracy": bal, "AUC": auc, "errors": int(sum(pairs.values()))})
            print(f"[seed {seed}, {arm}] accuracy {acc:.3f}, balanced accuracy {bal:.3f}, AUC {auc:.3f}")
        n_valid.append(len(targs))
    runs, all_pairs = pd.DataFrame(runs), pd.DataFrame(all_pairs)
    atomic_write_text(runs.to_csv(index=False), rec.out / "runs.csv")
    atomic_write_text(all_pairs.to_csv(index=False), rec.out / "pairs.csv")
    table = summarize(runs, all_pairs)
    if len(arms) > 1:
        paired = paired_differences(runs)
        atomic_write_text(paired.to_csv(index=False), rec.out / "paired.csv")
        atomic_write_text(markdown_table(paired, {c: "+.3f" for c in paired.columns if c.startswith("Δ")}), rec.out / "paired.md")
    sd = [f"{c} sd" for c in SCORES] if len(seeds) > 1 else None
    title = "mitigation ablation" + (f", mean ± sd over {len(seeds)} seeds" if sd else "")
    rec.save_figure(plot_bars(table, "arm", list(SCORES), title, baseline=True, error_cols=sd), "results.png")
    fmt = {c: ".3f" for c in table.columns if c.startswith(SCORES)} | {"errors": ".1f" if sd else ".0f"}
    md = rec.finish(table, formats=fmt, extra={"data": described, "seeds": seeds, "n_valid": n_valid, "classes": vocab})
    print(md)
    print(f"wrote {rec.out}/results.csv, results.md, runs.csv, pairs.csv, paired.csv, paired.md, history.csv, results.png, config.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
