"""Class balancing on DermaMNIST: none / static / resample / dynamic / loss-weighted (1/n,
1/sqrt(n), effective numbers), same model, epochs and seed; prints balanced accuracy (the
figure of merit for imbalanced data), accuracy and time per arm on the official validation
and test sets.

DermaMNIST is strongly imbalanced (nv is 67% of the training set). ``static`` oversamples
every class to the size of the largest once, so its epochs are ~4.7x longer; the time
column says so. ``resample`` draws a class-balanced epoch of the training set's size.
``dynamic`` re-weights classes each epoch from validation recall (its validation columns
are optimistic), ``dynamic (train recall)`` from the recall of the training batches.

    python benchmarks/balancing_dermamnist.py [--epochs 6] [--arch simple_cnn] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import torch

import dermlearn as dl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--arch", default="simple_cnn")
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--bs", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    data = dl.DermData.dermamnist()
    print(data)
    print(data.counts().T.to_string())
    test_dl = data.test_dl(size=args.size, presize=args.size)
    rows = []
    # name: (balance, loss-weight options, DynamicBalance options)
    arms = {"none": ("none", None, None), "static": ("static", None, None), "resample": ("resample", None, None),
            "dynamic": ("dynamic", None, None), "dynamic (train recall)": ("dynamic", None, {"source": "train"}),
            "loss 1/n": ("loss", {}, None), "loss 1/sqrt(n)": ("loss", {"power": 0.5}, None),
            "loss effective n (beta 0.999)": ("loss", {"beta": 0.999}, None)}  # fmt: skip
    for name, (balance, weights, dynamic) in arms.items():
        dls = data.dls(bs=args.bs, size=args.size, presize=args.size, balance=balance, seed=args.seed, progress=False)
        if dynamic is not None:
            dls.cbs = [dl.DynamicBalance(**dynamic)]
        torch.manual_seed(args.seed)
        loss = dl.CrossEntropy(weight=data.class_weights(**weights) if weights is not None else None)
        learn = dl.Learner(dls, dl.create_model(args.arch, data.c), loss_func=loss, metrics=[dl.accuracy, dl.balanced_accuracy], progress=False)
        t = time.perf_counter()
        learn.fit_one_cycle(args.epochs, args.lr)
        secs = time.perf_counter() - t
        v = learn.recorder.values[-1]
        probs, targs = learn.get_preds(dl=test_dl)
        rows.append((name, v["balanced_accuracy"], v["accuracy"], float(dl.balanced_accuracy(probs, targs)), float(dl.accuracy(probs, targs)), secs))
        print(f"{name}: done in {secs:.0f}s")
    print(f"\nDermaMNIST, {args.arch} at {args.size}px, {args.epochs} epochs one-cycle lr {args.lr}, batch {args.bs}, seed {args.seed}, torch {torch.__version__}")
    print("| balancing | valid balanced acc | valid acc | test balanced acc | test acc | train time (s) |")
    print("|---|---|---|---|---|---|")
    for b, vb, va, tb, ta, s in rows:
        print(f"| {b} | {vb:.3f} | {va:.3f} | {tb:.3f} | {ta:.3f} | {s:.0f} |")


if __name__ == "__main__":
    main()
