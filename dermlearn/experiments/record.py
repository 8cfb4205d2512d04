"""What every experiment writes: the resolved config (with seed, data, commit, versions and
wall time), the per-epoch history, the results table as CSV and Markdown, and plots."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from dermlearn.io import atomic_write_text

__all__ = ["Record", "git_commit", "markdown_table", "relative_out"]


def git_commit(package: str | os.PathLike | None = None) -> str:
    """The commit of the git checkout holding ``package`` (default: the installed dermlearn
    package), with ``+dirty`` when files under ``package`` have local changes (results
    written elsewhere in the checkout do not count), or ``'unknown'`` outside a checkout."""
    pkg = Path(package).resolve() if package is not None else Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=pkg, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "."], cwd=pkg,
                               capture_output=True, text=True, timeout=10).stdout.strip()  # fmt: skip
        return sha.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def relative_out(out: str | os.PathLike) -> str:
    """``out`` as a result file records it: relative to the current folder when it lies
    below it, else ``'.'`` (the folder the result files are in)."""
    path = Path(out).resolve()
    try:
        return path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return "."


def markdown_table(table: pd.DataFrame, formats: dict[str, str] | None = None, missing: dict[str, str] | None = None) -> str:
    """``table`` as a Markdown table; ``formats`` maps a column to a format spec (``'.3f'``).
    Missing values print as ``missing[column]``, or ``n/a``."""
    formats, missing = formats or {}, missing or {}

    def cell(col: str, v: Any) -> str:
        if v is None or (isinstance(v, float) and v != v):
            return missing.get(col, "n/a")
        return format(v, formats[col]) if col in formats else str(v)

    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(c, v) for c, v in zip(table.columns, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


class Record:
    """Collects and writes one experiment's outputs to ``out`` (each file atomically: a
    reader never sees half a table).

    Example::

        rec = Record("mitigation", out, args)      # args: argparse.Namespace or dict
        rec.add_history(arm="none", rows=learn.recorder.values)
        rec.finish(table, formats={"accuracy": ".3f"}, extra={"n_valid": 114})
    """

    def __init__(self, name: str, out: str | Path, settings: Any) -> None:
        self.name, self.out = name, Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.settings = dict(vars(settings)) if hasattr(settings, "__dict__") else dict(settings)
        if "out" in self.settings:  # relative paths only: a result file must not name this machine's folders
            self.settings["out"] = relative_out(self.out)
        self.t0 = time.perf_counter()
        self.started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.commit = git_commit()  # the code that runs is the code at the start
        self.history: list[dict[str, Any]] = []

    def add_history(self, rows: Sequence[dict[str, Any]], **tags: Any) -> None:
        """Per-epoch rows (e.g. ``learn.recorder.values``), tagged with the arm they belong to."""
        self.history += [{**tags, **r} for r in rows]

    def save_table(self, table: pd.DataFrame, name: str) -> Path:
        """Write ``out/name.csv`` beside the results (e.g. the rows of every seed)."""
        return atomic_write_text(table.to_csv(index=False), self.out / f"{name}.csv")

    def save_figure(self, fig, name: str) -> Path:
        """Write a matplotlib figure as ``out/name`` (PNG) and close it."""
        import matplotlib.pyplot as plt

        path = self.out / name
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        return path

    def finish(self, table: pd.DataFrame, formats: dict[str, str] | None = None, extra: dict[str, Any] | None = None,
               missing: dict[str, str] | None = None) -> str:  # fmt: skip
        """Write ``results.csv``, ``results.md``, ``history.csv`` (when there is one) and
        ``config.json``; returns the Markdown table."""
        import torch

        atomic_write_text(table.to_csv(index=False), self.out / "results.csv")
        md = markdown_table(table, formats, missing)
        atomic_write_text(md, self.out / "results.md")
        if self.history:
            atomic_write_text(pd.DataFrame(self.history).to_csv(index=False), self.out / "history.csv")
        config = {
            "experiment": self.name,
            **self.settings,
            **(extra or {}),
            "commit": self.commit,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "started": self.started,
            "wall_s": round(time.perf_counter() - self.t0, 1),
        }
        atomic_write_text(json.dumps(config, indent=2, default=str) + "\n", self.out / "config.json")
        return md
