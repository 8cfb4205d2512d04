"""``dermlearn demo``: train and evaluate on synthetic lesions (no download)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser(
        "demo",
        help="train and evaluate on synthetic lesions (no download)",
        description="Generate a seeded synthetic lesion dataset, run the LR range test, train with SGDR "
        "(cycle length doubling), evaluate, and write plots and the model to --out.",
    )
    d.add_argument("--out", default="dermlearn-demo", help="output folder for plots and the model (default: %(default)s)")
    d.add_argument("--arch", default="simple_cnn", help="architecture (default: %(default)s; e.g. resnet34)")
    d.add_argument("--n", type=int, help="number of images (default: 1000; 400 with --quick)")
    d.add_argument("--size", type=int, help="image side in pixels (default: 64; 32 with --quick)")
    d.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    d.add_argument("--confounders", nargs="*", default=["illumination", "gamma", "cast", "fov"],
                   choices=["illumination", "gamma", "cast", "fov"],
                   help="photographic confounders, each applied to 30%% of images (default: all four; "
                        "give the flag with no value for clean images)")  # fmt: skip
    d.add_argument("--quick", action="store_true", help="a smaller run (400 images at 32 px) for a smoke test; "
                                                        "--n and --size still apply")
    d.add_argument("--no-bar", action="store_true", help="no progress bars (the table of epochs still prints)")
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from dermlearn.data.synthetic import synthetic_dataloaders
    from dermlearn.evaluation.metrics import (
        accuracy,
        balanced_accuracy,
        confusion_matrix,
        per_class_recall,
    )
    from dermlearn.evaluation.plots import plot_confusion_matrix
    from dermlearn.models import create_model
    from dermlearn.training.learner import Learner
    from dermlearn.training.lr_finder import minimum, steep, valley

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n = args.n if args.n is not None else (400 if args.quick else 1000)
    size = args.size if args.size is not None else (32 if args.quick else 64)
    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    dls = synthetic_dataloaders(n=n, size=size, n_classes=5, bs=32, seed=args.seed, confounders=args.confounders, confound_p=0.3)
    print(f"data: {n} synthetic lesion images, {size}x{size}, classes {dls.vocab}"
          f" ({len(dls.train.dataset)} train / {len(dls.valid.dataset)} valid)")
    model = create_model(args.arch, len(dls.vocab))
    learn = Learner(dls, model, metrics=[accuracy, balanced_accuracy], path=out, progress="table" if args.no_bar else True)
    print(f"model: {args.arch}, device {learn.device}")

    res = learn.lr_find(num_it=60, suggest_funcs=(minimum, steep, valley), show_plot=False)
    # from scratch, Smith's rule (an order of magnitude below the loss minimum) trains faster
    # than fastai's valley, which is tuned for fine-tuning pretrained weights; valley guards
    # against a minimum found among the first noisy iterations
    lr = float(max(res.suggestions.get("minimum", 3e-3), res.suggestions.get("valley", 0.0)))
    print("lr_find suggestions: " + ", ".join(f"{k}={v:.2e}" for k, v in res.suggestions.items()) + f" -> lr_max {lr:.2e}")
    fig = res.plot(used=lr)
    fig.savefig(out / "lr_find.png", dpi=100)
    plt.close(fig)

    cycles = 3
    print(f"fit_sgdr: {cycles} cycles, cycle_len 1, cycle_mult 2 ({2**cycles - 1} epochs)")
    learn.fit_sgdr(cycles, 1, lr_max=lr, cycle_mult=2)
    for name, fig in (("loss.png", learn.recorder.plot_loss()), ("lr.png", learn.recorder.plot_lr())):
        fig.savefig(out / name, dpi=100)
        plt.close(fig)

    probs, targs = learn.get_preds()
    cm = confusion_matrix(probs, targs, len(dls.vocab)).numpy()
    fig = plot_confusion_matrix(cm, dls.vocab)
    fig.savefig(out / "confusion.png", dpi=100)
    plt.close(fig)
    recall = per_class_recall(probs, targs).tolist()
    path = learn.save("demo")
    print(f"\nvalidation: accuracy {float(accuracy(probs, targs)):.3f}, balanced accuracy {float(balanced_accuracy(probs, targs)):.3f}")
    print("recall per class: " + ", ".join(f"{c} {r:.2f}" for c, r in zip(dls.vocab, recall)))
    print("confusion matrix (rows actual, columns predicted):")
    w = max(len(c) for c in dls.vocab)
    print(" " * (w + 1) + " ".join(f"{c[:5]:>5}" for c in dls.vocab))
    for c, row in zip(dls.vocab, cm):
        print(f"{c:>{w}} " + " ".join(f"{int(v):>5}" for v in row))
    print(f"\nwrote {out / 'lr_find.png'}, loss.png, lr.png, confusion.png and the model {path}")
    print(f"done in {time.perf_counter() - t0:.1f}s")
    return 0
