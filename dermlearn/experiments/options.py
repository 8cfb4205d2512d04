"""Options shared by the experiments: the PAD-UFES-20 arm comparisons' one-cycle fit
(:func:`add_fit_args`) and the DermaMNIST recipe (:func:`add_recipe_args`)."""

from __future__ import annotations

import argparse

__all__ = ["QUICK_FIT", "add_fit_args", "add_recipe_args", "parse_args"]

QUICK_FIT = {"arch": "simple_cnn", "size": 64, "epochs": 3}
"""What ``--quick`` changes in the options of :func:`add_fit_args`."""


def add_fit_args(ap: argparse.ArgumentParser) -> None:
    """``--quick``, ``--arch``, ``--size``, ``--epochs``, ``--bs``, ``--lr`` and ``--seed``:
    each arm is trained with ``fit_one_cycle(epochs, lr)`` from the same initial weights."""
    g = ap.add_argument_group("training (the same for every arm)")
    g.add_argument("--quick", action="store_true", help="small size for a smoke test (simple_cnn, 64 px, 3 epochs)")
    g.add_argument("--arch", default="resnet18", help="architecture, from random initialisation (default: %(default)s)")
    g.add_argument("--size", type=int, default=96, help="input side in pixels (default: %(default)s)")
    g.add_argument("--epochs", type=int, default=8, help="one-cycle epochs per model (default: %(default)s)")
    g.add_argument("--bs", type=int, default=32, help="batch size (default: %(default)s)")
    g.add_argument("--lr", type=float, default=2e-3, help="maximum learning rate (default: %(default)s)")
    g.add_argument("--seed", type=int, default=0, help="seed of the split, initial weights and sampling (default: %(default)s)")


def add_recipe_args(ap: argparse.ArgumentParser, budget_min: float, unit: str = "arm and seed") -> None:
    """The options of :func:`~dermlearn.experiments.dermamnist.train_seed` that every
    DermaMNIST experiment shares: ``--arch``, ``--size``, ``--bs``, ``--budget-min`` (default
    ``budget_min`` wall-clock minutes per ``unit``), ``--lr-find-iters``, ``--probe-batches``
    and ``--rotate``."""
    ap.add_argument("--arch", default="resnet20", help="architecture (default: %(default)s; resnet32 is deeper, resnet18 with "
                    "the small stem takes ten times resnet20's computation)")  # fmt: skip
    ap.add_argument("--size", type=int, default=28, help="input side (default: %(default)s, DermaMNIST's own)")
    ap.add_argument("--bs", type=int, default=128)
    ap.add_argument("--budget-min", type=float, default=budget_min,
                    help=f"wall-clock minutes per {unit}, range test included (default: %(default)s)")  # fmt: skip
    ap.add_argument("--lr-find-iters", type=int, default=100)
    ap.add_argument("--probe-batches", type=int, default=10, help="training batches timed to plan the SGDR cycles")
    ap.add_argument("--rotate", type=float, default=180.0, help="maximum rotation of the augmentation, degrees (default: "
                    "%(default)s: dermoscopy has no up)")  # fmt: skip


def parse_args(ap: argparse.ArgumentParser, argv: list[str] | None, quick: dict[str, object]) -> argparse.Namespace:
    """Parse ``argv``; with ``--quick``, ``quick`` replaces the defaults of the options it names.

    Options given on the command line win over both: ``--quick --epochs 5`` is the quick
    size with 5 epochs.

    Args:
        ap: A parser with a ``--quick`` flag.
        argv: The arguments (None: ``sys.argv[1:]``).
        quick: Option destinations (``"max_epochs"``, not ``"--max-epochs"``) and their
            quick values.
    """
    first, _ = ap.parse_known_args(argv)
    if first.quick:
        unknown = set(quick) - set(vars(first))  # the namespace holds every option's destination
        if unknown:
            raise ValueError(f"quick values for options the parser does not have: {sorted(unknown)}")
        ap.set_defaults(**quick)
    return ap.parse_args(argv)
