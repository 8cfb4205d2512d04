"""``dermlearn experiment NAME``: one of the study's experiments, written to a results folder."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run", "EXPERIMENTS"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("experiment", help="run one of the study's experiments and write its tables",
                       description="Run an experiment on public data and write config.json (settings, seed, data, "
                       "commit, wall time), results.csv, results.md, history.csv (per epoch) and plots to --out "
                       "(default: results/NAME). photometric: PAD-UFES-20 degraded by lighting, gamma and colour "
                       "casts, corrections at test time and in training, lesion crop. mitigation: the ablation of "
                       "balancing (none/static/dynamic/loss), lesion crop, gamma (auto and the study's fixed value), "
                       "illumination and colour correction on a three-way patient split, the test photos scored once, "
                       "paired differences with intervals and the confused pairs that moved. architectures: the study's recipe on ResNet-34/50/101/152 "
                       "and DenseNet-161. cifar-speedup: baseline vs speed-up recipe, time to a target accuracy, eta. "
                       "analysis: confusion matrix, leading confused pairs and Grad-CAM/GBP galleries of a trained "
                       "(--model) or freshly trained model. dermamnist: the public DermaMNIST benchmark at 28 px, "
                       "trained on train, chosen on valid, test scored once, several seeds, beside the published rows. "
                       "dermamnist-balancing: none/static/dynamic/loss weights/resampling at equal wall-clock, paired "
                       "by seed, with the confused pairs each arm moves. dermamnist-transfer: a CIFAR-10 body fine-tuned "
                       "two-phase with discriminative rates vs one rate vs from scratch. fov-detection: the "
                       "field-of-view detector on DermaMNIST images it was not tuned on (MedMNIST-C black corners, "
                       "synthetic rims, clean images). robustness: the study's corrections, photometric augmentation and "
                       "MedMNIST-C's own augmentation on DermaMNIST's test split under every MedMNIST-C corruption "
                       "(needs the medmnistc package). Every experiment takes --quick (a few minutes on 2 CPU "
                       "cores) and --out; 'dermlearn experiment NAME --help' lists its own options.")  # fmt: skip
    e.add_argument("name", choices=EXPERIMENTS, help="the experiment: " + ", ".join(EXPERIMENTS))
    e.add_argument("args", nargs=argparse.REMAINDER, help="the experiment's options, e.g. --quick --out DIR --seed 1")
    e.set_defaults(func=run)


EXPERIMENTS = ("photometric", "mitigation", "architectures", "cifar-speedup", "analysis", "dermamnist", "dermamnist-balancing",
               "dermamnist-transfer", "fov-detection", "robustness")


def run(args: argparse.Namespace) -> int:
    import importlib

    import matplotlib

    matplotlib.use("Agg")
    module = importlib.import_module(f"dermlearn.experiments.{args.name.replace('-', '_')}")
    rest = list(args.args)
    if not any(a == "--out" or a.startswith("--out=") for a in rest):
        rest += ["--out", f"results/{args.name}"]
    return module.main(rest)
