"""The ``dermlearn`` command: the parser and the dispatch to one module per command.

Exit codes: 0 success; 1 runtime failure; 2 bad arguments or inputs (missing path, bad
column, unknown architecture), as argparse does; 3 ``predict`` read only some of the files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import demo, experiment, interpret, lr_find, predict, train
from .config import expand_config

__all__ = ["main"]

COMMANDS = (demo, train, lr_find, interpret, predict, experiment)  # in the order --help lists them


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dermlearn", description="Train, interpret and harden classifiers for clinical skin photos.")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def _version() -> str:
    from dermlearn.version import __version__

    return f"dermlearn {__version__}"


def _with_config(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The commands that take ``--config``, by name."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: p for name, p in sub.choices.items() if any("--config" in a.option_strings for a in p._actions)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = expand_config(argv, _with_config(parser))
    except (FileNotFoundError, ValueError) as e:
        print(f"dermlearn {argv[0]}: error: {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as e:
        print(f"dermlearn {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. piped into head: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
