"""Robustness on MedMNIST-C's DermaMNIST corruptions: do the study's corrections, or
photometric augmentation, keep a classifier's accuracy on badly taken images?

Four models per seed, each trained with the study's recipe
(:func:`~dermlearn.experiments.dermamnist.train_seed`: range test, SGDR with doubling
cycles, the best validation epoch kept) within the same wall-clock budget, and five arms
scored on the official test split, clean and under every ``medmnistc`` corruption at
severities 1-5 (:mod:`~dermlearn.experiments.medmnist_c`):

* **(a) baseline**: the recipe's geometric and lighting augmentation only;
* **(b) baseline + corrections at test**: the same model, every test batch first cropped to
  its field of view (``CropVignette``), then illumination-corrected, auto-gamma'd and
  colour-normalised (Shades of Gray), as ``predict`` would with these steps exported;
* **(c) photometric augmentation**: trained with dermlearn's random illumination ramps,
  gamma and colour casts (each with probability 0.5) before the geometric augmentation;
* **(d) MedMNIST-C augmentation**: trained on the package's own ``AugMedMNISTC`` draws
  (a pool of draws per training image, made before training, one draw per epoch);
* **(e) corrections + photometric augmentation**: trained with (b)'s corrections in its
  pipeline, which it keeps at test time, and (c)'s augmentation between the field-of-view
  crop and the photometric corrections (the crop of a stored image is then found once and
  remembered, not searched for again every epoch).

Per arm, seed, corruption and severity: accuracy and balanced error (``1 - balanced
accuracy``). Summaries: clean and mean corrupted accuracy with 95% t intervals over seeds,
the MedMNIST-C paper's BE and rBE (normalised by the package's AlexNet errors), the mean
accuracy drop on the photometric and field-of-view corruptions (brightness, contrast,
black corner) measured from the baseline's clean accuracy, paired differences between arms,
and a heat map (corruption x severity) per arm.

    dermlearn experiment robustness [--quick] [--seeds 0 1 2] [--budget-min 2]
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from dermlearn.data import DermData
from dermlearn.data.cache import default_cache_dir
from dermlearn.data.loader import CachedItems, TensorLoader
from dermlearn.evaluation.metrics import accuracy, balanced_accuracy
from dermlearn.io import atomic_write_text
from dermlearn.training.learner import Learner
from dermlearn.transforms import (
    AutoGamma,
    CorrectIllumination,
    CropVignette,
    RandomColourCast,
    RandomGamma,
    RandomIllumination,
    ShadesOfGray,
)

from .dermamnist import t_interval, train_seed
from .medmnist_c import (
    MedMNISTCPool,
    augmentation_pool,
    corrupted_sets,
    load_corruptions,
    summary_errors,
)
from .options import add_recipe_args, parse_args
from .record import Record, markdown_table

__all__ = ["ARMS", "MODELS", "PHOTOMETRIC_FOV", "arm_summary", "corrections", "drop_table", "paired_table", "photometric",
           "plot_heatmaps", "run", "score_sets"]  # fmt: skip

PHOTOMETRIC_FOV = ("brightness_up", "brightness_down", "contrast_up", "contrast_down", "black_corner")
"""The corruptions the study's corrections address (the goal's group)."""

# model: (photometric augmentation, corrections in the pipeline, MedMNIST-C augmentation)
MODELS = {
    "baseline": (False, False, False),
    "photometric aug": (True, False, False),
    "MedMNIST-C aug": (False, False, True),
    "corrections + photometric aug": (True, True, False),
}

# arm: (model, corrections added at test time)
ARMS = {
    "(a) baseline": ("baseline", False),
    "(b) baseline + corrections at test": ("baseline", True),
    "(c) photometric augmentation": ("photometric aug", False),
    "(d) MedMNIST-C augmentation": ("MedMNIST-C aug", False),
    "(e) corrections + photometric augmentation": ("corrections + photometric aug", False),
}


def corrections() -> list[torch.nn.Module]:
    """The study's corrections as one pipeline: field of view, illumination, gamma, colour."""
    return [CropVignette(), CorrectIllumination(), AutoGamma(), ShadesOfGray()]


def photometric(seed: int) -> list[torch.nn.Module]:
    """dermlearn's photometric augmentation: an illumination ramp, a gamma and a colour cast,
    each drawn for half the images."""
    return [RandomIllumination(seed=seed), RandomGamma(seed=seed + 1), RandomColourCast(seed=seed + 2)]


def score_sets(learn: Learner, clean: torch.Tensor, sets: Mapping[tuple[str, int], torch.Tensor], labels: torch.Tensor,
               extra_tfms: list[torch.nn.Module] = ()) -> pd.DataFrame:  # fmt: skip
    """Accuracy and balanced error of ``learn`` on the clean images (corruption ``'clean'``,
    severity 0) and on each corrupted set, with ``extra_tfms`` run before the model's own
    preprocessing. One row per set."""
    old = learn.dls.batch_tfms
    learn.dls.batch_tfms = [*extra_tfms, *old]
    rows = []
    try:
        for (name, sev), imgs in [(("clean", 0), clean), *sets.items()]:
            probs, targs = learn.get_preds(dl=TensorLoader(CachedItems(imgs, labels), 512))
            rows.append({"corruption": name, "severity": sev, "acc": float(accuracy(probs, targs)),
                         "balanced_error": 1.0 - float(balanced_accuracy(probs, targs))})  # fmt: skip
    finally:
        learn.dls.batch_tfms = old
    return pd.DataFrame(rows)


def _be(scores: pd.DataFrame) -> dict[str, float]:
    """BE and rBE of one arm and seed; NaN where ``medmnistc``'s baselines are missing."""
    errs = {n: g.sort_values("severity")["balanced_error"].tolist() for n, g in scores[scores["corruption"] != "clean"].groupby("corruption")}
    clean = float(scores.loc[scores["corruption"] == "clean", "balanced_error"].iloc[0])
    try:
        return summary_errors(errs, clean)
    except (ImportError, KeyError):
        return {"BE": float("nan"), "rBE": float("nan")}


def _per_seed(scores: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """One row per arm and seed: clean ACC, mean corrupted ACC (all corruptions, and the
    photometric/FOV group), the group's drop from the baseline's clean ACC, BE and rBE."""
    rows = []
    base_clean = scores[(scores["arm"] == baseline) & (scores["corruption"] == "clean")].set_index("seed")["acc"]
    for (arm, seed), g in scores.groupby(["arm", "seed"], sort=False):
        cor = g[g["corruption"] != "clean"]
        grp = cor[cor["corruption"].isin(PHOTOMETRIC_FOV)]
        clean = float(g.loc[g["corruption"] == "clean", "acc"].iloc[0])
        rows.append({"arm": arm, "seed": seed, "clean ACC": clean, "corrupted ACC": float(cor["acc"].mean()),
                     "photometric/FOV ACC": float(grp["acc"].mean()) if len(grp) else float("nan"),
                     "photometric/FOV drop": float(base_clean.get(seed, np.nan) - grp["acc"].mean()) if len(grp) else float("nan"),
                     "photometric/FOV own drop": clean - float(grp["acc"].mean()) if len(grp) else float("nan"), **_be(g)})  # fmt: skip
    return pd.DataFrame(rows)


_SUMMARY_COLS = ("clean ACC", "corrupted ACC", "photometric/FOV ACC", "photometric/FOV drop", "photometric/FOV own drop", "BE", "rBE")


def arm_summary(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per arm: each column of the per-seed rows as mean [95% t interval] over seeds."""
    rows = []
    for arm, g in per_seed.groupby("arm", sort=False):
        row: dict[str, Any] = {"arm": arm, "seeds": len(g)}
        for c in _SUMMARY_COLS:
            m, lo, hi = t_interval(g[c].tolist())
            row[c] = f"{m:.3f}" if np.isnan(lo) else f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
        rows.append(row)
    return pd.DataFrame(rows)


def paired_table(per_seed: pd.DataFrame, pairs: list[tuple[str, str]], cols: tuple[str, ...]) -> pd.DataFrame:
    """For each ``(arm, reference)`` and column: the mean of ``arm - reference`` over the seeds
    both have, its 95% t interval and whether the interval excludes zero."""
    rows = []
    for arm, ref in pairs:
        a, r = per_seed[per_seed["arm"] == arm].set_index("seed"), per_seed[per_seed["arm"] == ref].set_index("seed")
        seeds = a.index.intersection(r.index)
        if len(seeds) == 0:
            continue
        for c in cols:
            d = (a.loc[seeds, c] - r.loc[seeds, c]).tolist()
            m, lo, hi = t_interval(d)
            rows.append({"arm": arm, "minus": ref, "score": c, "difference": m, "low": lo, "high": hi, "seeds": len(d),
                         "excludes 0": bool(lo > 0 or hi < 0) if len(d) > 1 else False})  # fmt: skip
    return pd.DataFrame(rows)


def drop_table(per_seed: pd.DataFrame, baseline: str, corrected: str) -> pd.DataFrame:
    """The goal's figure, per seed and as a mean: the photometric/FOV accuracy drop of
    ``corrected`` over that of ``baseline`` (both from the baseline's clean accuracy); the
    goal is a ratio of at most 0.5."""
    a = per_seed[per_seed["arm"] == baseline].set_index("seed")["photometric/FOV drop"]
    b = per_seed[per_seed["arm"] == corrected].set_index("seed")["photometric/FOV drop"]
    seeds = a.index.intersection(b.index)
    rows = [{"seed": s, "drop (a)": a[s], "drop (b)": b[s], "ratio (b)/(a)": b[s] / a[s] if a[s] else float("nan")} for s in seeds]
    if rows:
        rows.append({"seed": "mean", "drop (a)": float(a[seeds].mean()), "drop (b)": float(b[seeds].mean()),
                     "ratio (b)/(a)": float(b[seeds].mean() / a[seeds].mean()) if a[seeds].mean() else float("nan")})  # fmt: skip
    return pd.DataFrame(rows)


def plot_heatmaps(scores: pd.DataFrame):
    """One heat map per arm: test accuracy (mean over seeds) for each corruption (rows) and
    severity 1-5 (columns), the clean accuracy in the title. Returns the Figure."""
    import matplotlib.pyplot as plt

    arms = list(dict.fromkeys(scores["arm"]))
    names = list(dict.fromkeys(scores.loc[scores["corruption"] != "clean", "corruption"]))
    fig, axes = plt.subplots(1, len(arms), figsize=(2.6 * len(arms) + 1.5, 0.32 * len(names) + 1.8), layout="constrained", squeeze=False)
    mean = scores.groupby(["arm", "corruption", "severity"], sort=False)["acc"].mean()
    im = None
    for ax, arm in zip(axes[0], arms):
        m = np.array([[mean.get((arm, n, s), np.nan) for s in range(1, 6)] for n in names])
        im = ax.imshow(m, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        for i in range(len(names)):
            for j in range(5):
                if not np.isnan(m[i, j]):
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6, color="w" if m[i, j] < 0.5 else "k")
        ax.set_xticks(range(5), [str(s) for s in range(1, 6)])
        ax.set_xlabel("severity")
        ax.set_yticks(range(len(names)), names if ax is axes[0][0] else [""] * len(names))
        ax.set_title(f"{arm}\nclean {mean.get((arm, 'clean', 0), np.nan):.3f}", fontsize=8)
    fig.colorbar(im, ax=axes[0].tolist(), label="test accuracy (mean over seeds)", shrink=0.8)
    return fig


def run(data: DermData, args: argparse.Namespace, corruptions: Mapping[str, Any], rec: Record, log=print) -> pd.DataFrame:
    """Train the models ``args.arms`` need for every seed, score their arms on the clean and
    corrupted test split, and save the per-set scores after every model (a long run's
    finished work is kept). Returns the scores: one row per arm, seed, corruption and
    severity (``'clean'``, 0 for the clean images)."""
    arms = list(args.arms)
    models = list(dict.fromkeys(ARMS[a][0] for a in arms))
    imgs = data.images(args.size, progress=False)
    te = data.indices("test")
    if args.test_subset:
        te = np.random.default_rng(0).permutation(te)[: args.test_subset]
    clean, labels = imgs[te].contiguous(), torch.from_numpy(data.y[te])
    cache = None if args.no_cache else default_cache_dir() / "medmnistc"
    sets = corrupted_sets(clean, corruptions, seed=0, work_size=args.work_size, workers=args.workers, cache_dir=cache)
    stores = None
    if "MedMNIST-C aug" in models:
        tr = torch.from_numpy(data.indices("train"))
        pool = augmentation_pool(imgs[tr], corruptions, k=args.pool, seed=1, work_size=args.work_size, workers=args.workers)
        stores = imgs.unsqueeze(0).repeat(args.pool, 1, 1, 1, 1)
        stores[:, tr] = pool
    train_rows, scores = [], []
    for seed in args.seeds:
        order = models[seed % len(models):] + models[: seed % len(models)]  # no model always trains first
        for model in order:
            photo, corr, medc = MODELS[model]
            margs = argparse.Namespace(**vars(args), stem="auto", lr_mult=1.0, label_smoothing=0.0, balance="none", table=False)
            learn, row, _ = train_seed(data, margs, seed, log=lambda s, m=model: log(f"[{m}] {s}"),
                                       cbs=[MedMNISTCPool(stores)] if medc else None, tfms=corrections() if corr else (),
                                       train_steps=photometric(seed) if photo else (), train_steps_at=1 if corr else 0)  # fmt: skip
            train_rows.append({"model": model, **row})
            for arm in [a for a in arms if ARMS[a][0] == model]:
                s = score_sets(learn, clean, sets, labels, corrections() if ARMS[arm][1] else [])
                scores.append(s.assign(arm=arm, seed=seed))
                c = s[s["corruption"] != "clean"]["acc"].mean()
                log(f"[{arm}] seed {seed}: clean ACC {s['acc'].iloc[0]:.3f}, mean corrupted ACC {c:.3f}")
            rec.save_table(pd.DataFrame(train_rows), "training")
            rec.save_table(pd.concat(scores, ignore_index=True), "scores")
    out = pd.concat(scores, ignore_index=True)
    out["arm"] = pd.Categorical(out["arm"], categories=arms, ordered=True)
    out = out.sort_values(["arm", "seed"], kind="stable")
    out["arm"] = out["arm"].astype(str)
    return out


def main(argv=None, corruptions: Mapping[str, Any] | None = None) -> int:
    """The command. ``corruptions`` replaces the ``medmnistc`` ones (tests without the package)."""
    ap = argparse.ArgumentParser(prog="dermlearn experiment robustness", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS), metavar="ARM", help="arms (default: all): " + "; ".join(ARMS))
    ap.add_argument("--corruptions", nargs="+", metavar="NAME", help="medmnistc corruptions (default: every one that runs here)")
    add_recipe_args(ap, budget_min=2.0, unit="model and seed")
    ap.add_argument("--work-size", type=int, default=224, help="side the corruptions are applied at (default: %(default)s, MedMNIST-C's)")
    ap.add_argument("--pool", type=int, default=5, help="AugMedMNISTC draws per training image (default: %(default)s)")
    ap.add_argument("--workers", type=int, default=2, help="processes that corrupt images (default: %(default)s)")
    ap.add_argument("--no-cache", action="store_true", help="do not keep the corrupted test sets on disk")
    ap.add_argument("--subset", type=int, help="train on N training images drawn at random, every class kept (smoke tests)")
    ap.add_argument("--test-subset", type=int, help="score N test images drawn at random (smoke tests)")
    ap.add_argument("--quick", action="store_true", help="one seed, 600 training and 200 test images, 0.3 minutes per model")
    ap.add_argument("--out", default="results/robustness", help="output folder (default: %(default)s)")
    args = parse_args(ap, argv, {"seeds": [0], "subset": 600, "test_subset": 200, "budget_min": 0.3, "lr_find_iters": 30, "pool": 2})
    if len(set(args.seeds)) != len(args.seeds):
        ap.error(f"--seeds must differ, got {args.seeds}")
    unusable: dict[str, str] = {}
    if corruptions is None:
        corruptions, unusable = load_corruptions("dermamnist")
    if args.corruptions:
        missing = sorted(set(args.corruptions) - set(corruptions))
        if missing:
            ap.error(f"--corruptions: {missing} not available; available: {sorted(corruptions)}" + (f"; left out: {unusable}" if unusable else ""))
        corruptions = {n: corruptions[n] for n in args.corruptions}
    for name, why in unusable.items():
        print(f"left out: {name} ({why})")
    rec = Record("robustness", args.out, args)
    data = DermData.dermamnist()
    if args.subset:
        data = data.subset(args.subset)
    print(data)
    scores = run(data, args, corruptions, rec)
    baseline = next(iter(args.arms))
    per_seed = _per_seed(scores, baseline)
    rec.save_table(per_seed, "per_seed")
    table = arm_summary(per_seed)
    pairs = [(a, b) for a, b in [("(b) baseline + corrections at test", "(a) baseline"), ("(c) photometric augmentation", "(a) baseline"),
             ("(d) MedMNIST-C augmentation", "(a) baseline"), ("(e) corrections + photometric augmentation", "(a) baseline"),
             ("(c) photometric augmentation", "(d) MedMNIST-C augmentation"),
             ("(e) corrections + photometric augmentation", "(d) MedMNIST-C augmentation")] if a in args.arms and b in args.arms]  # fmt: skip
    paired = paired_table(per_seed, pairs, ("clean ACC", "corrupted ACC", "photometric/FOV ACC"))
    drops = drop_table(per_seed, "(a) baseline", "(b) baseline + corrections at test")
    by_corruption = (scores[scores["corruption"] != "clean"].groupby(["corruption", "arm"], sort=False)["acc"].mean()
                     .unstack("arm").reindex(columns=list(dict.fromkeys(scores["arm"]))).reset_index())  # fmt: skip
    rec.save_table(paired, "paired")
    rec.save_table(drops, "photometric_fov_drop")
    rec.save_table(by_corruption, "by_corruption")
    rec.save_figure(plot_heatmaps(scores), "heatmaps.png")
    md = rec.finish(table, extra={"data": repr(data), "corruptions": list(corruptions), "left out": unusable, "arms": list(args.arms)})
    num = {"difference": "+.3f", "low": "+.3f", "high": "+.3f"}
    text = (md + "\n## Paired differences (test, 95% t interval over seeds)\n\n" + markdown_table(paired, num)
            + "\n## Photometric and field-of-view corruptions: accuracy drop from the baseline's clean accuracy "
            "(goal: (b) at most half of (a))\n\n" + markdown_table(drops, {c: ".3f" for c in drops.columns if c != "seed"})
            + "\n## Test accuracy per corruption (mean over severities and seeds)\n\n"
            + markdown_table(by_corruption, {c: ".3f" for c in by_corruption.columns if c != "corruption"}))  # fmt: skip
    atomic_write_text(text, rec.out / "results.md")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
