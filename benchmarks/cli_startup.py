"""How long the ``dermlearn`` command takes before it prints anything.

Times ``dermlearn --version``, ``dermlearn --help`` and ``dermlearn train --help`` (each a
fresh process, interleaved with the baseline) next to the cost of starting Python itself
(``python -c pass``) and of importing torch and torchvision, which every command that
trains or predicts pays. Prints the median, min and max wall time of ``--repeats`` runs of
each, and each command's median as a ratio to a bare Python start.

    python benchmarks/cli_startup.py --repeats 11

Target: ``--help`` and ``--version`` under 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "dermlearn --version": [sys.executable, "-m", "dermlearn", "--version"],
    "dermlearn --help": [sys.executable, "-m", "dermlearn", "--help"],
    "dermlearn train --help": [sys.executable, "-m", "dermlearn", "train", "--help"],
    "import torch, torchvision": [sys.executable, "-c", "import torch, torchvision"],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    times: dict[str, list[float]] = {k: [] for k in COMMANDS}
    for _ in range(args.repeats):
        for name, cmd in COMMANDS.items():  # interleaved: a slow moment hits every command alike
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["python -c pass"])
    print(f"{'command':<28} {'median s':>9} {'min s':>7} {'max s':>7} {'/ python':>9}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<28} {med:>9.3f} {min(ts):>7.3f} {max(ts):>7.3f} {med / base:>9.2f}")
    worst = max(statistics.median(times[k]) for k in ("dermlearn --version", "dermlearn --help"))
    print(f"--help / --version median: {worst:.3f} s (target < 1 s)")


if __name__ == "__main__":
    main()
