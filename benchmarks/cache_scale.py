"""The decode cache at scale: epoch time and memory per process, read whole into memory vs
memory-mapped, one process vs two, for N = 1k ... 100k images at 224 px.

The images are generated straight into a ``.npy`` cache file (random bytes: what the
decode cache holds, without decoding 100,000 files first; nothing is committed). For every
N, mode and process count, fresh child processes each open the file as
:func:`dermlearn.data.cache.decode_all` returns it (``memory``: ``np.load`` whole, the old
behaviour; ``mapped``: read-only memory map), take the first N rows as a dataset
(``CachedItems(rows=...)``; with two processes each takes every second item, as two
``torchrun`` ranks shard an epoch), and run two shuffled epochs of ``TensorLoader`` batches
(256 images), converting each batch to float as a pipeline's first step. Every epoch starts
in all processes at once (a barrier: a process that loaded sooner would otherwise time its
epochs alone on the machine while the other still reads the file), and the CPU cores are
shared out between the processes (``torch.set_num_threads(cores // processes)``, as
``torchrun`` sets ``OMP_NUM_THREADS``: two processes with a thread per core spin on each
other's cores). Per process:
the time to open/load, each epoch's time, and at the end the peak resident memory
(``VmHWM``; not ``ru_maxrss``, which a child inherits from the parent that wrote the file) and its private part (``RssAnon``: memory the process owns; a mapped file's
pages are ``RssFile``, the page cache's, shared by every process mapping the file).
Combinations whose in-memory copies would not fit in the available memory are skipped and
say so.

    python benchmarks/cache_scale.py [--sizes 1000 10000 50000 100000] [--px 224] [--folder DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

CHILD = """
import json, os, sys, time
import numpy as np, torch
from dermlearn.data.loader import CachedItems, TensorLoader
file, n, mode, rank, world, n_epochs = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))  # the cores shared out, as torchrun's OMP_NUM_THREADS
t = time.perf_counter()
if mode == "memory":  # read the first n rows whole, as np.load(file) reads a cache file
    with open(file, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, _ = read_header(f)
        store = torch.from_numpy(np.fromfile(f, dtype=np.uint8, count=n * int(np.prod(shape[1:]))).reshape(n, *shape[1:]))
else:
    store = torch.from_numpy(np.load(file, mmap_mode="r")[:n])
load_s = time.perf_counter() - t
rows = torch.arange(rank, n, world)
items = CachedItems(store, torch.zeros(len(rows), dtype=torch.int64), rows=rows)
loader = TensorLoader(items, bs=256, shuffle=True, seed=rank)
epochs = []
for _ in range(n_epochs):
    print("ready", flush=True)  # barrier: every process starts each epoch together
    sys.stdin.readline()
    t = time.perf_counter()
    for x, _y in loader:
        x.float()
    epochs.append(time.perf_counter() - t)
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
kb = lambda k: int(status[k].split()[0]) / 1024
print(json.dumps({"load_s": load_s, "epoch1_s": epochs[0], "epoch2_s": epochs[1],
                  "peak_rss_mb": kb("VmHWM"),
                  "rss_anon_mb": kb("RssAnon"), "rss_file_mb": kb("RssFile")}))
"""


def make_file(folder: Path, n: int, px: int) -> Path:
    """``folder/scale-<n>x<px>.npy``: ``(n, 3, px, px)`` uint8 random bytes (made once)."""
    file = folder / f"scale-{n}x{px}.npy"
    done = file.with_suffix(".done")
    if done.is_file():
        return file
    folder.mkdir(parents=True, exist_ok=True)
    arr = np.lib.format.open_memmap(file, mode="w+", dtype=np.uint8, shape=(n, 3, px, px))
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for i in range(0, n, 1000):
        arr[i : i + 1000] = rng.integers(0, 256, size=arr[i : i + 1000].shape, dtype=np.uint8)
    arr.flush()
    del arr
    done.write_text("ok")
    print(f"wrote {file} ({file.stat().st_size / 1e9:.1f} GB) in {time.perf_counter() - t:.0f} s", flush=True)
    return file


def available_mb() -> float:
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def run(file: Path, n: int, mode: str, world: int, epochs: int = 2) -> list[dict]:
    """Run ``world`` child processes on the first ``n`` rows of ``file`` for ``epochs``
    epochs; every epoch starts in all of them at once (each child says "ready" and waits for
    a line on its stdin), so that the processes' timed epochs overlap however long each took
    to load."""
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(file), str(n), mode, str(r), str(world), str(epochs)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in range(world)]  # fmt: skip
    for _ in range(epochs):
        for r, p in enumerate(procs):
            if p.stdout.readline().strip() != "ready":
                for q in procs:  # the others wait on the barrier: stop them too
                    q.kill()
                raise RuntimeError(f"child failed ({mode}, n={n}, rank {r}):\n{p.stderr.read()[-3000:]}")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
    out = []
    for r, p in enumerate(procs):
        so, se = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"child failed ({mode}, n={n}, rank {r}):\n{se[-3000:]}")
        out.append({"rank": r, **json.loads(so.strip().splitlines()[-1])})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 50_000, 100_000])
    ap.add_argument("--px", type=int, default=224)
    ap.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "dermlearn-scale"),
                    help="where the generated file goes, 15 GB at 100k images (default: %(default)s)")
    ap.add_argument("--out", default=None, help="write results.csv here")
    args = ap.parse_args()
    file = make_file(Path(args.folder), max(args.sizes), args.px)
    per_image_mb = 3 * args.px * args.px / 2**20
    rows = []
    for n in args.sizes:
        for world in (1, 2):
            for mode in ("memory", "mapped"):
                need = n * per_image_mb * (world if mode == "memory" else 1)
                if mode == "memory" and need > 0.8 * available_mb():
                    rows.append({"n": n, "processes": world, "mode": mode, "note": f"does not fit: {need / 1024:.1f} GB of copies"})
                    print(rows[-1], flush=True)
                    continue
                for r in run(file, n, mode, world):
                    rows.append({"n": n, "processes": world, "mode": mode, "dataset_mb": round(n * per_image_mb), **r})
                    print({k: round(v, 2) if isinstance(v, float) else v for k, v in rows[-1].items()}, flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        table.to_csv(Path(args.out) / "results.csv", index=False)
    done = table.dropna(subset=["epoch2_s"])
    summary = done.groupby(["n", "processes", "mode"]).agg(
        load_s=("load_s", "max"), epoch1_s=("epoch1_s", "max"), epoch2_s=("epoch2_s", "max"),
        peak_rss_mb=("peak_rss_mb", "max"), rss_anon_mb=("rss_anon_mb", "max"))  # fmt: skip
    print(summary.round(2).to_markdown())
    wide = summary["epoch2_s"].unstack("mode")
    if {"memory", "mapped"} <= set(wide.columns):
        print("\nmapped / in-memory epoch time (second epoch, warm):")
        print((wide["mapped"] / wide["memory"]).round(2).to_string())


if __name__ == "__main__":
    main()
