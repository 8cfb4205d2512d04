"""The study's analysis: for a trained model, the confusion matrix, the leading confused label
pairs (symmetric error counts, pairs with at least ``--min-count`` errors) and Grad-CAM /
Guided Backprop galleries of the top pairs, for the predicted and the runner-up class; where
the data has the metadata (PAD-UFES-20 does), who the model fails: scores per Fitzpatrick skin
type and body region, and the Grad-CAM pointing game against the lesion masks for correct and
wrong predictions (``dermlearn.experiments.who_fails``).

With ``--model`` (a file from ``dermlearn train`` or ``learn.export``) the model is only
evaluated, on the validation split of ``--data`` made with the same seed. Without it, a model
is first trained with the study's recipe (``dermlearn.training.recipe.study_recipe``).

    python -m dermlearn.experiments.analysis [--quick] [--data pad-ufes-20] [--model M] [--out DIR]
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from dermlearn.cli.data_args import add_data_args, data_from_args
from dermlearn.evaluation.metrics import accuracy, balanced_accuracy
from dermlearn.interpret import Interpretation, write_interpretation
from dermlearn.losses import BCEWithLogitsOneHot
from dermlearn.models import create_model
from dermlearn.training.learner import Learner
from dermlearn.training.load_learner import load_learner
from dermlearn.training.recipe import RATE_RULES, study_recipe

from .options import parse_args
from .record import Record
from .who_fails import write_who_fails


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="dermlearn experiment analysis", description=__doc__.split("\n\n")[0])
    add_data_args(ap, default="pad-ufes-20")
    ap.add_argument("--model", help="an exported model to analyse (default: train one with the study's recipe)")
    ap.add_argument("--arch", default="resnet34", help="architecture when training (default: %(default)s)")
    ap.add_argument("--size", type=int, default=128, help="input side (default: %(default)s, or the model's)")
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--cycles", type=int, default=3, help="SGDR cycles when training (1, 2, 4, ... epochs)")
    ap.add_argument("--min-count", type=int, default=5, help="pairs with at least this many errors (default: %(default)s)")
    ap.add_argument("--pairs", type=int, default=3, help="galleries for this many leading pairs (default: %(default)s)")
    ap.add_argument("--k", type=int, default=3, help="cases per direction in each gallery (default: %(default)s)")
    ap.add_argument("--suggestion", choices=RATE_RULES, default=None,
                    help="the range test's rate to train at (default: the recipe's, valley)")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="simple_cnn at 64 px, 2 SGDR cycles, pairs with at least 2 errors")
    ap.add_argument("--out", default="results/analysis", help="output folder (default: %(default)s)")
    args = parse_args(ap, argv, {"arch": "simple_cnn", "size": 64, "cycles": 2, "min_count": 2})
    rec = Record("analysis", args.out, args)
    data = data_from_args(args)
    print(data)
    trained = {}
    if args.model:
        learn = load_learner(args.model)
        if data.classes != learn.meta["classes"]:
            raise ValueError(f"the data's classes {data.classes} differ from the model's {learn.meta['classes']}")
        size = learn.meta.get("input_size") or args.size
        dl = data.dls(bs=args.bs, size=size, augment=False, seed=args.seed, progress=False).valid
    else:
        size = args.size
        dls = data.dls(bs=args.bs, size=args.size, seed=args.seed, progress=False)
        torch.manual_seed(args.seed)
        learn = Learner(dls, create_model(args.arch, data.c), loss_func=BCEWithLogitsOneHot(),
                        metrics=[accuracy, balanced_accuracy], progress=False)  # fmt: skip
        res = study_recipe(learn, pretrained=False, cycles=args.cycles, lr_find_iters=30 if args.quick else 100,
                           suggestion=args.suggestion)  # fmt: skip
        rec.add_history(res.history)
        rec.save_figure(res.lr_find.plot(used=res.lr), "lr_find.png")
        trained = {"lr": res.lr, "lr_find": res.lr_find.suggestions, "epochs": len(res.history)}
        learn.export(rec.out / "model.pth", extra={"data": args.data, "seed": args.seed})
        dl = dls.valid
    interp = Interpretation.from_learner(learn, dl=dl)
    pairs = write_interpretation(interp, rec.out, args.min_count, args.pairs, args.k, groups=data.groups("valid"))
    meta = data.items.iloc[data.indices("valid")].reset_index(drop=True)
    who = write_who_fails(interp, meta, rec.out, size, units=data.groups("valid"))
    table = pd.DataFrame(pairs, columns=["label 1", "label 2", "count"])
    rec.finish(table, extra={"data": repr(data), "n_valid": len(interp.targets), "accuracy": interp.accuracy,
                                  "balanced_accuracy": interp.balanced_accuracy, **who, **trained})  # fmt: skip
    print(f"wrote {rec.out}/results.csv, results.md (the leading pairs), config.json" + ("" if args.model else ", model.pth, lr_find.png")
          + (", subgroups.csv / .md" if "subgroups" in who else "") + (", pointing_game.csv / .md" if "pointing_game" in who else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
