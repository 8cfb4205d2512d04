"""The decode cache on disk: written once and atomically, memory-mapped read-only, shared
by processes, and enough to train on a dataset larger than the memory a process may use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dermlearn as dl
from dermlearn.data import cache as cache_module
from dermlearn.data.cache import decode_all
from tests.helpers import REPO, synthetic_folder

LINUX = sys.platform.startswith("linux")


def _files(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("*.png"))


def _mapped_file(t: torch.Tensor) -> str | None:
    """The file whose mapping in this process holds ``t``'s memory (Linux), else None."""
    ptr = t.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        lo, hi = (int(v, 16) for v in parts[0].split("-"))
        if lo <= ptr < hi:
            return parts[5] if len(parts) == 6 else None
    return None


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("imgs")
    synthetic_folder(root, n=40, size=40, n_classes=3)
    return root


def test_disk_cache_is_memory_mapped_and_equals_a_fresh_decode(folder, tmp_path):
    paths = _files(folder)
    fresh, errors = decode_all(paths, 32, cache_dir=None, progress=False)
    assert errors == [] and fresh.shape == (40, 3, 32, 32)
    first, _ = decode_all(paths, 32, cache_dir=tmp_path, progress=False)  # decodes and writes
    again, _ = decode_all(paths, 32, cache_dir=tmp_path, progress=False)  # maps what was written
    whole, _ = decode_all(paths, 32, cache_dir=tmp_path, progress=False, memory_map=False)
    assert torch.equal(first, fresh) and torch.equal(again, fresh) and torch.equal(whole, fresh)
    (npy,) = tmp_path.glob("images-*.npy")
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed, not left
    if LINUX:
        assert _mapped_file(first) == str(npy) and _mapped_file(again) == str(npy)
        assert _mapped_file(whole) != str(npy)  # read whole into memory
        assert _mapped_file(fresh) != str(npy)


def test_dermdata_splits_gather_from_the_one_store(folder, tmp_path):
    """The training and validation items are rows of the decode cache, not copies of it;
    their batches equal the rows they name."""
    data = dl.DermData.from_folder(folder, seed=0)
    store = data.images(32, cache_dir=tmp_path, progress=False)
    dls = data.dls(bs=8, size=32, presize=32, cache_dir=tmp_path, augment=False, progress=False)
    for dl_, split in ((dls.train, "train"), (dls.valid, "valid")):
        items = dl_.dataset
        assert items.store is store
        assert torch.equal(items.rows, torch.from_numpy(data.indices(split)))
        assert torch.equal(items.images, store[items.rows])
    x, y = next(iter(dls.valid))  # not shuffled: the first rows of the validation split
    rows = torch.from_numpy(data.indices("valid"))[: len(x)]
    assert torch.equal(x, store[rows]) and torch.equal(y, torch.from_numpy(data.y[rows.numpy()]))


def test_an_interrupted_decode_leaves_no_file_and_the_next_one_completes(folder, tmp_path, monkeypatch):
    paths = _files(folder)
    real = cache_module._decode_one
    calls = {"n": 0}

    def dies_at_the_tenth(path, size):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt  # Ctrl-C mid-decode
        return real(path, size)

    monkeypatch.setattr(cache_module, "_decode_one", dies_at_the_tenth)
    with pytest.raises(KeyboardInterrupt):
        decode_all(paths, 32, cache_dir=tmp_path, num_workers=1, progress=False)
    assert not list(tmp_path.glob("*.npy")) and not list(tmp_path.glob(".*.tmp"))
    monkeypatch.setattr(cache_module, "_decode_one", real)
    images, errors = decode_all(paths, 32, cache_dir=tmp_path, progress=False)
    assert errors == [] and torch.equal(images, decode_all(paths, 32, progress=False)[0])


def test_a_truncated_cache_file_is_decoded_again(folder, tmp_path):
    paths = _files(folder)
    good, _ = decode_all(paths, 32, cache_dir=tmp_path, progress=False)
    good = good.clone()
    (npy,) = tmp_path.glob("images-*.npy")
    npy.write_bytes(npy.read_bytes()[: npy.stat().st_size // 2])  # e.g. a disk that filled up
    images, errors = decode_all(paths, 32, cache_dir=tmp_path, progress=False)
    assert errors == [] and torch.equal(images, good) and npy.stat().st_size > 40 * 3 * 32 * 32


def test_unreadable_files_are_reported_and_nothing_is_cached(folder, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    paths = [*_files(folder)[:5], str(bad)]
    images, errors = decode_all(paths, 32, cache_dir=tmp_path / "cache", progress=False)
    assert [e.path for e in errors] == [str(bad)] and images.shape == (6, 3, 32, 32)
    assert images[5].eq(0).all() and images[:5].gt(0).any()
    assert not list((tmp_path / "cache").glob("*.npy")) and not list((tmp_path / "cache").glob(".*.tmp"))


_CHILD_DECODE = """
import sys, hashlib, time
from pathlib import Path
from dermlearn.data import cache
calls = 0
real = cache._decode_one
def counted(path, size):
    global calls
    calls += 1
    time.sleep(0.05)  # a slow disk: the two decodes would overlap without the lock
    return real(path, size)
cache._decode_one = counted
paths = sorted(str(p) for p in Path(sys.argv[1]).rglob("*.png"))
images, errors = cache.decode_all(paths, 48, cache_dir=sys.argv[2], num_workers=1, progress=False)
print(calls, hashlib.sha1(images.numpy().tobytes()).hexdigest(), len(errors))
"""


@pytest.mark.skipif(not LINUX, reason="the decode lock uses fcntl (POSIX); tested on Linux")
def test_two_processes_decode_once_and_map_one_file(folder, tmp_path):
    """Two processes started together (two torchrun ranks, two jobs): one decodes while the
    other waits on the lock, then maps the file the first wrote."""
    cmd = [sys.executable, "-c", _CHILD_DECODE, str(folder), str(tmp_path / "cache")]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    results = [o[0].split() for o in outs]
    assert sorted(int(r[0]) for r in results) == [0, 40]  # one decoded every file, the other none
    assert results[0][1:] == results[1][1:]  # the same images, no errors
    assert len(list((tmp_path / "cache").glob("images-*.npy"))) == 1


_CHILD_LIMIT = """
import resource, sys
import numpy as np
import torch
import dermlearn as dl

big, warm, cache = sys.argv[1:4]
torch.set_num_threads(1)

def fit(folder):
    data = dl.DermData.from_folder(folder, seed=0)
    dls = data.dls(bs=8, size=32, presize=256, cache_dir=cache, augment=False, progress=False)
    learn = dl.Learner(dls, dl.create_model("simple_cnn", data.c), progress=False)
    learn.fit(1, 1e-3)
    return data, learn

fit(warm)  # the same pipeline on a few images: imports, threads and allocator pools settle

def data_in_use():
    for line in open("/proc/self/status"):
        if line.startswith("VmData:"):
            return int(line.split()[1]) * 1024

headroom = 32 * 2**20
resource.setrlimit(resource.RLIMIT_DATA, (data_in_use() + headroom,) * 2)
data, learn = fit(big)  # the mapped cache: pages come from the page cache, not this process
nbytes = data.images(256).numel()
assert len(learn.recorder.values) == 1 and np.isfinite(learn.recorder.values[0]["valid_loss"])
try:
    dl.DermData.from_folder(big, seed=0).images(256, cache_dir=cache, memory_map=False)
    whole = "read"
except MemoryError:
    whole = "MemoryError"
print(nbytes, headroom, whole)
"""


@pytest.mark.skipif(not LINUX, reason="RLIMIT_DATA and /proc/self/status are Linux's")
def test_training_under_a_memory_limit_smaller_than_the_dataset(tmp_path):
    """A child process limits its private memory (RLIMIT_DATA) to 32 MB above what it uses
    after a warm-up, then trains an epoch on 400 images presized to 256 px (79 MB) from the
    memory-mapped cache; reading the same cache whole into memory fails under that limit."""
    big, warm, cache = tmp_path / "big", tmp_path / "warm", tmp_path / "cache"
    synthetic_folder(big, n=400, size=40, n_classes=3)
    synthetic_folder(warm, n=24, size=40, n_classes=3, seed=1)
    for folder in (big, warm):  # decoded here, before the child limits itself
        dl.DermData.from_folder(folder, seed=0).images(256, cache_dir=cache, progress=False)
    r = subprocess.run([sys.executable, "-c", _CHILD_LIMIT, str(big), str(warm), str(cache)], capture_output=True, text=True,
                       timeout=300, cwd=REPO)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    nbytes, headroom, whole = r.stdout.split()
    assert int(nbytes) == 400 * 3 * 256 * 256 > 2 * int(headroom)
    assert whole == "MemoryError"  # the limit binds: the in-memory path could not have trained
