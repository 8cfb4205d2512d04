"""``dermlearn interpret``: confusion matrix, leading confused pairs and galleries of a model file."""

from __future__ import annotations

import argparse
from pathlib import Path

from .data_args import add_data_args, data_from_args

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    i = sub.add_parser("interpret", help="confusion matrix, leading confused pairs and Grad-CAM/GBP galleries",
                       description="Load an exported model, predict the validation split of --data (the same seed "
                       "gives the same split as training), and write the confusion matrix, per-class report, the "
                       "leading confused pairs and galleries of the top pairs to --out.")  # fmt: skip
    i.add_argument("--model", required=True, help="model file written by 'dermlearn train' or learn.export()")
    add_data_args(i)
    i.add_argument("--size", type=int, help="input side (default: the model's)")
    i.add_argument("--bs", type=int, default=64, help="batch size (default: %(default)s)")
    i.add_argument("--min-count", type=int, default=5, help="pairs with at least this many errors (default: %(default)s)")
    i.add_argument("--pairs", type=int, default=3, help="galleries for this many leading pairs (default: %(default)s)")
    i.add_argument("--k", type=int, default=3, help="cases per direction in each gallery (default: %(default)s)")
    i.add_argument("--bootstrap", type=int, default=1000,
                   help="resamples for the metrics' 95%% intervals, by group where the data has one; 0: none (default: %(default)s)")
    i.add_argument("--out", default="dermlearn-interpret", help="output folder (default: %(default)s)")
    i.add_argument("--isic-csv", metavar="PATH",
                   help="also write the validation predictions as an ISIC challenge submission: image (the file "
                        "name without its suffix) and one probability column per class")  # fmt: skip
    i.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from dermlearn.interpret import Interpretation, write_interpretation
    from dermlearn.training.load_learner import load_learner

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    learn = load_learner(args.model)
    data = data_from_args(args)
    if data.classes != learn.meta["classes"]:
        raise ValueError(f"the data's classes {data.classes} differ from the model's {learn.meta['classes']}")
    size = args.size or learn.meta.get("input_size") or 224
    dl = data.dls(bs=args.bs, size=size, augment=False, seed=args.seed, progress=False, skip_bad=args.skip_bad).valid
    interp = Interpretation.from_learner(learn, dl=dl)
    # resample whole patients (or lesions) where the data has groups: their photos are not independent
    write_interpretation(interp, out, args.min_count, args.pairs, args.k, bootstrap=args.bootstrap, groups=data.groups("valid"))
    if args.isic_csv:
        _write_isic_csv(interp, data, Path(args.isic_csv))
    return 0


def _write_isic_csv(interp, data, path: Path) -> None:
    """The validation predictions in the ISIC challenge's submission layout."""
    import pandas as pd

    from dermlearn.io import atomic_write_text

    paths = data.items["path"].to_numpy()[data.indices("valid")]
    if len(paths) != len(interp.probs):
        raise ValueError(f"{len(paths)} validation files but {len(interp.probs)} predictions")
    table = pd.DataFrame(interp.probs.double().numpy(), columns=interp.vocab)
    table.insert(0, "image", [Path(p).stem for p in paths])
    atomic_write_text(table.to_csv(index=False, float_format="%.8f"), path)
    print(f"wrote {path} (ISIC challenge layout, {len(table)} images)")
