"""The study's mitigation factors as an ablation (PAD-UFES-20): class balancing (none /
static / dynamic / loss-weighted), field-of-view crop to the lesion, automatic gamma,
illumination correction and Shades of Gray colour constancy.

Every arm trains the same architecture for the same epochs from the same initial weights,
on the same split (grouped by patient) and seed; one factor differs from the baseline
(no balancing, no correction, full view). Each arm is evaluated on the validation photos
as they are, with its own preprocessing. Reports accuracy and balanced accuracy per arm,
and the confused pairs that moved most against the baseline (symmetric error counts,
as the study's pair table).

    python -m dermlearn.experiments.mitigation [--quick] [--arch resnet18] [--epochs 8] [--out DIR]
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import pandas as pd
import torch

from ..data import DermData
from ..learner import Learner
from ..losses import CrossEntropy
from ..metrics import accuracy, balanced_accuracy, confusion_matrix
from ..models import create_model
from ..transforms import AutoGamma, CorrectIllumination, ShadesOfGray
from .options import QUICK_FIT, add_fit_args, parse_args
from .photometric import lesion_crops
from .plots import plot_bars
from .record import Record

# arm -> (balance, corrections, lesion crop)
ARMS: dict[str, tuple[str, tuple[type, ...], bool]] = {
    "baseline (none)": ("none", (), False),
    "balance: static": ("static", (), False),
    "balance: dynamic": ("dynamic", (), False),
    "balance: loss-weighted": ("loss", (), False),
    "FoV: lesion crop": ("none", (), True),
    "gamma: auto": ("none", (AutoGamma,), False),
    "illumination correction": ("none", (CorrectIllumination,), False),
    "colour: shades of gray": ("none", (ShadesOfGray,), False),
}


def pair_counts(cm: np.ndarray, vocab: list[str]) -> dict[str, int]:
    """Symmetric error counts ``cm[a, b] + cm[b, a]`` of every unordered pair ``'a / b'``."""
    return {f"{vocab[a]} / {vocab[b]}": int(cm[a, b] + cm[b, a]) for a in range(len(vocab)) for b in range(a + 1, len(vocab))}


def moved_pairs(base: dict[str, int], arm: dict[str, int], k: int = 2) -> str:
    """The ``k`` pairs whose error count changed most against the baseline, e.g.
    ``'BCC / SCC -3, ACK / SEK +2'`` (``'-'`` when none changed)."""
    delta = sorted(((arm[p] - base[p], p) for p in base if arm[p] != base[p]), key=lambda t: (-abs(t[0]), t[1]))
    return ", ".join(f"{p} {d:+d}" for d, p in delta[:k]) or "-"


def run_arm(data: DermData, crops: DermData | None, arm: str, args, init: torch.nn.Module):
    """Train one arm from ``init``; returns the learner and its validation probabilities and targets."""
    balance, corrections, crop = ARMS[arm]
    source = crops if crop else data
    dls = source.dls(bs=args.bs, size=args.size, seed=args.seed, balance=balance, progress=False,
                     tfms=[c() for c in corrections])  # fmt: skip
    loss = CrossEntropy(weight=dls.class_weights if balance == "loss" else None)
    torch.manual_seed(args.seed)
    learn = Learner(dls, copy.deepcopy(init), loss_func=loss, metrics=[accuracy, balanced_accuracy], progress=False)
    learn.fit_one_cycle(args.epochs, args.lr)
    probs, targs = learn.get_preds()
    return learn, probs, targs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="dermlearn experiment mitigation", description=__doc__.split("\n\n")[0])
    add_fit_args(ap)
    ap.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS), metavar="ARM",
                    help="arms to run (default: all): " + "; ".join(ARMS))  # fmt: skip
    ap.add_argument("--out", default="results/mitigation", help="output folder (default: %(default)s)")
    args = parse_args(ap, argv, QUICK_FIT)
    arms = ["baseline (none)"] + [a for a in args.arms if a != "baseline (none)"]
    rec = Record("mitigation", args.out, args)
    data = DermData.pad_ufes_20(seed=args.seed)
    print(data)
    presize = max(args.size, round(1.25 * args.size))
    crops = data.with_images(presize, lesion_crops(data, presize)) if any(ARMS[a][2] for a in arms) else None
    torch.manual_seed(args.seed)
    init = create_model(args.arch, data.c)
    vocab = list(data.classes)
    rows, base_pairs, all_pairs = [], None, []
    for arm in arms:
        learn, probs, targs = run_arm(data, crops, arm, args, init)
        rec.add_history(learn.recorder.values, arm=arm)
        pairs = pair_counts(confusion_matrix(probs, targs, len(vocab)).numpy(), vocab)
        base_pairs = pairs if base_pairs is None else base_pairs
        all_pairs.append({"arm": arm, **pairs})
        acc, bal = float(accuracy(probs, targs)), float(balanced_accuracy(probs, targs))
        rows.append({"arm": arm, "accuracy": acc, "balanced accuracy": bal, "errors": int(sum(pairs.values())),
                     "pairs that moved (vs baseline)": "-" if arm == arms[0] else moved_pairs(base_pairs, pairs)})  # fmt: skip
        print(f"[{arm}] accuracy {acc:.3f}, balanced accuracy {bal:.3f}")
    table = pd.DataFrame(rows)
    pd.DataFrame(all_pairs).to_csv(rec.out / "pairs.csv", index=False)
    rec.save_figure(plot_bars(table, "arm", ["accuracy", "balanced accuracy"], "mitigation ablation", baseline=True), "results.png")
    md = rec.finish(table, formats={"accuracy": ".3f", "balanced accuracy": ".3f"},
                    extra={"data": repr(data), "n_valid": len(targs), "classes": vocab})  # fmt: skip
    print(md)
    print(f"wrote {rec.out}/results.csv, results.md, pairs.csv, history.csv, results.png, config.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
