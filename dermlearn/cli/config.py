"""Run configs: ``dermlearn train --config run.toml`` reads a command's options from a TOML
(or, with PyYAML installed, YAML) file, and every run writes its resolved options as
``run.toml`` to ``--out``, so that passing that file back reruns the run.

A config holds the command's long options without their dashes (``arch = "resnet34"``,
``correct = ["illumination", "gamma"]``, ``no_bar = true``; ``-`` or ``_`` alike). The file's
options come first and the command line's after them, so a flag given on the command line
wins (a ``true`` switch such as ``no_bar`` cannot be turned off there: leave it out of the
file). Unknown keys and values of the wrong kind are errors naming the key.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["config_argv", "expand_config", "load_config", "write_config"]

_SKIP = {"help", "config", "func", "command", "parser"}


def load_config(path: str | Path) -> dict[str, Any]:
    """The options in a ``.toml``, ``.yaml`` or ``.yml`` file, as a flat dict.

    Raises:
        FileNotFoundError: no such file.
        ValueError: another suffix, a file that does not parse, or nested tables.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    text = path.read_text()
    if path.suffix.lower() == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib
        try:
            cfg = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"--config {path}: not valid TOML ({e})") from e
    elif path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as e:
            raise ValueError(f"--config {path}: YAML configs need PyYAML (pip install pyyaml), or write it as TOML") from e
        try:
            cfg = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"--config {path}: not valid YAML ({e})") from e
    else:
        raise ValueError(f"--config {path}: expected a .toml, .yaml or .yml file")
    if not isinstance(cfg, dict):
        raise ValueError(f"--config {path}: expected option = value pairs at the top level")
    nested = [k for k, v in cfg.items() if isinstance(v, dict)]
    if nested:
        raise ValueError(f"--config {path}: options are flat key = value pairs; {', '.join(nested)} is a table")
    return cfg


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The parser's long options by key (``--weight-power`` -> ``weight_power``)."""
    out = {}
    for action in parser._actions:
        longs = [s for s in action.option_strings if s.startswith("--")]
        if longs and action.dest not in _SKIP:
            out[longs[0][2:].replace("-", "_")] = action
    return out


def config_argv(parser: argparse.ArgumentParser, cfg: dict[str, Any], source: str = "the config") -> list[str]:
    """``cfg`` as command-line arguments of ``parser``'s command (parsed, typed and checked by
    argparse like the command line itself).

    Raises:
        ValueError: a key the command does not have (with the nearest one), or a value of
            the wrong kind for its option.
    """
    options = _options(parser)
    argv: list[str] = []
    for raw_key, value in cfg.items():
        key = str(raw_key).replace("-", "_")
        action = options.get(key)
        if action is None:
            near = difflib.get_close_matches(key, options, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; the options are {', '.join(sorted(options))}"
            raise ValueError(f"{source}: unknown option {raw_key!r}{hint}")
        flag = action.option_strings[-1] if action.option_strings[-1].startswith("--") else action.option_strings[0]
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if not isinstance(value, bool):
                raise ValueError(f"{source}: {raw_key} is a switch: true or false, got {value!r}")
            if value != action.default:
                argv.append(flag)
            continue
        if value is None:
            continue
        many = action.nargs in ("+", "*")
        if many != isinstance(value, list):
            kind = "a list" if many else "one value"
            raise ValueError(f"{source}: {raw_key} takes {kind}, got {value!r}")
        values = value if many else [value]
        if any(isinstance(v, (dict, list)) for v in values):
            raise ValueError(f"{source}: {raw_key} takes plain values, got {value!r}")
        if many and not values:
            continue
        argv += [flag, *map(str, values)]
    return argv


def expand_config(argv: Sequence[str], parsers: dict[str, argparse.ArgumentParser]) -> list[str]:
    """``argv`` with a command's ``--config FILE`` replaced by the file's options, placed
    right after the command name so that the command line's own flags come later and win."""
    argv = list(argv)
    if not argv or argv[0] not in parsers:
        return argv
    for i, a in enumerate(argv[1:], start=1):
        if a == "--config" or a.startswith("--config="):
            path = a.split("=", 1)[1] if "=" in a else (argv[i + 1] if i + 1 < len(argv) else None)
            if path is None:
                return argv  # argparse reports the missing value
            rest = argv[1:i] + argv[i + (1 if "=" in a else 2) :]
            return [argv[0], *config_argv(parsers[argv[0]], load_config(path), f"--config {path}"), *rest]
    return argv


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"cannot write {v} to a TOML config")
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a TOML basic string: JSON's escapes are TOML's


def write_config(args: argparse.Namespace, parser: argparse.ArgumentParser, path: str | Path) -> Path:
    """Write the options ``args`` resolved to, as a TOML config ``--config`` reads back
    (options left at None are left out)."""
    from dermlearn.io import atomic_write_text

    lines = [f"# {parser.prog}: the options of this run; rerun it with --config {Path(path).name}"]
    for key, action in _options(parser).items():
        v = getattr(args, action.dest, None)
        if v is not None:
            lines.append(f"{key} = {_toml_value(v)}")
    return atomic_write_text("\n".join(lines) + "\n", path)
