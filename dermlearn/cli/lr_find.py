"""``dermlearn lr-find``: the LR range test and its plot."""

from __future__ import annotations

import argparse
from pathlib import Path

from .data_args import data_from_args
from .figures import save_figure
from .learner_args import add_train_args, check_arch, learner_for

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    f = sub.add_parser("lr-find", help="run the LR range test and plot loss against learning rate",
                       description="Raise the learning rate exponentially over a few batches, plot the loss, print "
                       "the suggestions (valley, slide, minimum, steep). Writes lr_find.png to --out.")  # fmt: skip
    add_train_args(f)
    f.add_argument("--num-it", type=int, default=100, help="iterations of the sweep (default: %(default)s)")
    f.add_argument("--freeze", action="store_true", help="sweep with the body frozen (head only)")
    f.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from dermlearn.training.lr_finder import minimum, slide, steep, valley

    check_arch(args.arch)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    learn = learner_for(args, data_from_args(args))
    if args.freeze:
        learn.freeze()
    res = learn.lr_find(num_it=args.num_it, suggest_funcs=(valley, slide, minimum, steep), show_plot=False)
    save_figure(res.plot(), out / "lr_find.png")
    for k, v in res.suggestions.items():
        print(f"{k:<8} {v:.3e}")
    print(f"wrote {out / 'lr_find.png'}" + (" (the loss diverged: the sweep stopped early)" if res.stopped_early else ""))
    return 0
