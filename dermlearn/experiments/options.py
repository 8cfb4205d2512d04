"""Options shared by the experiments that train one model per arm on PAD-UFES-20."""

from __future__ import annotations

import argparse

__all__ = ["add_fit_args", "apply_quick"]


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


def apply_quick(args: argparse.Namespace) -> argparse.Namespace:
    """With ``--quick``: simple_cnn at 64 px for 3 epochs."""
    if args.quick:
        args.arch, args.size, args.epochs = "simple_cnn", 64, 3
    return args
