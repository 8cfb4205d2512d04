"""The study's architecture table: ResNet-34/50/101/152 and DenseNet-161 trained with its
recipe (LR range test, SGDR with cycle length doubling, discriminative learning rates when
pretrained, early stopping, BCE-with-logits on one-hot targets), on PAD-UFES-20 or any
folder / CSV. Reports top-1 accuracy, balanced accuracy and training time per architecture.

    python -m dermlearn.experiments.architectures [--quick] [--data pad-ufes-20] [--out DIR]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from dermlearn.cli.data_args import add_data_args, data_from_args
from dermlearn.evaluation.metrics import accuracy, balanced_accuracy
from dermlearn.losses import BCEWithLogitsOneHot
from dermlearn.models import create_model
from dermlearn.training.learner import Learner
from dermlearn.training.recipe import study_recipe

from .options import parse_args
from .plots import plot_bars
from .record import Record

STUDY_ARCHS = ("resnet34", "resnet50", "resnet101", "resnet152", "densenet161")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="dermlearn experiment architectures", description=__doc__.split("\n\n")[0])
    add_data_args(ap, default="pad-ufes-20")
    ap.add_argument("--archs", nargs="+", default=list(STUDY_ARCHS))
    ap.add_argument("--pretrained", action="store_true", help="ImageNet weights (needs the network or the hub cache)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--cycles", type=int, default=3, help="SGDR cycles for all layers (1, 2, 4, ... epochs)")
    ap.add_argument("--head-cycles", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="64 px, 2 SGDR cycles, a 30-iteration LR test")
    ap.add_argument("--out", default="results/architectures", help="output folder (default: %(default)s)")
    args = parse_args(ap, argv, {"size": 64, "cycles": 2, "head_cycles": 1})
    rec = Record("architectures", args.out, args)
    data = data_from_args(args)
    print(data)
    rows = []
    for arch in args.archs:
        dls = data.dls(bs=args.bs, size=args.size, seed=args.seed, progress=False)
        torch.manual_seed(args.seed)
        learn = Learner(dls, create_model(arch, data.c, pretrained=args.pretrained), loss_func=BCEWithLogitsOneHot(),
                        metrics=[accuracy, balanced_accuracy], progress=False)  # fmt: skip
        t = time.perf_counter()
        res = study_recipe(learn, args.pretrained, head_cycles=args.head_cycles, cycles=args.cycles,
                           lr_find_iters=30 if args.quick else 100, log=lambda m, a=arch: print(f"[{a}] {m}"))  # fmt: skip
        secs = time.perf_counter() - t
        final = learn.validate()
        rows.append({"architecture": arch, "top1": final["accuracy"], "balanced_accuracy": final["balanced_accuracy"],
                     "epochs": len(res.history), "lr": res.lr, "time_s": round(secs, 1)})  # fmt: skip
        rec.add_history(res.history, architecture=arch)
        print(f"[{arch}] top-1 {final['accuracy']:.3f}, balanced {final['balanced_accuracy']:.3f}, {secs:.0f}s")
    table = pd.DataFrame(rows)
    rec.save_figure(plot_bars(table, "architecture", ["top1", "balanced_accuracy"], "the study's recipe per architecture"), "results.png")
    md = rec.finish(table, formats={"top1": ".3f", "balanced_accuracy": ".3f", "lr": ".2e", "time_s": ".0f"}, extra={"data": repr(data)})
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
