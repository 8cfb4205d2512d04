"""Decode a list of image files once into one uint8 array ``(N, 3, P, P)``, in parallel,
optionally kept on disk so that a second run skips decoding.

The disk cache is keyed by the files (path, size, modification time), the presize and the
cache format version. It is written once, straight into a memory-mapped ``.npy`` file
beside its final name, then renamed (atomic: no reader ever sees a partial file), and read
back memory-mapped: pages come from the operating system's page cache as batches touch
them, so a dataset larger than the memory trains from disk, and every process on a machine
that maps the same file (``torchrun`` ranks, two jobs) shares one copy of it. While one
process decodes, the others wait on a lock file and then map what it wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dermlearn.io import atomic_path, atomic_write

from .decode import UnreadableImage, image_item

__all__ = ["decode_all", "default_cache_dir"]

_FORMAT = 1


def default_cache_dir() -> Path:
    """``$DERMLEARN_CACHE``, else ``~/.cache/dermlearn``."""
    return Path(os.environ.get("DERMLEARN_CACHE", Path.home() / ".cache" / "dermlearn"))


def _key(paths: Sequence[str], size: int) -> str:
    h = hashlib.sha1(f"dermlearn-cache-v{_FORMAT}|{size}".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"|{os.path.abspath(p)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def _decode_one(path: str, size: int) -> Tensor | UnreadableImage:
    try:
        return image_item(path, size)
    except UnreadableImage as e:
        return e


class _Incomplete(Exception):
    """A decode with unreadable files: nothing is cached, the images come back in memory."""

    def __init__(self, images: Tensor, errors: list[UnreadableImage]) -> None:
        super().__init__(f"{len(errors)} unreadable files")
        self.images, self.errors = images, errors


@contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created when missing) for the block: one
    process decodes, the others wait for its file. Without ``fcntl`` (Windows), no lock:
    each process decodes and the atomic rename keeps the file whole."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _open_cached(file: Path, n: int, size: int, memory_map: bool) -> Tensor | None:
    """The cached images, or None when the file is missing, unreadable or of another shape.

    Memory-mapped read-only and shared (``mmap_mode='r'``): the pages are the page cache's,
    counted once for every process that maps the file and against no process's private
    memory (a copy-on-write map would be charged in full to each process's commit limit,
    and a dataset larger than memory could not be mapped at all). Such a tensor must not be
    written in place (``.clone()`` first); dermlearn only ever gathers batches from it."""
    if not file.is_file():
        return None
    try:
        arr = np.load(file, mmap_mode="r" if memory_map else None)
    except (OSError, ValueError):
        return None
    if arr.shape != (n, 3, size, size) or arr.dtype != np.uint8:
        return None
    with warnings.catch_warnings():  # "not writable": by design, see above
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(arr)


def _decode_into(out: Tensor, paths: list[str], size: int, workers: int, progress: bool) -> list[UnreadableImage]:
    """Decode ``paths`` into the rows of ``out`` (zeros stay for unreadable files)."""
    from tqdm.auto import tqdm

    errors: list[UnreadableImage] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(lambda p: _decode_one(p, size), paths, chunksize=16)
        for i, r in enumerate(tqdm(results, total=len(paths), desc=f"decoding {len(paths)} images at {size}px", disable=not progress, leave=False)):
            if isinstance(r, UnreadableImage):
                errors.append(r)
            else:
                out[i] = r
    return errors


def decode_all(
    paths: Sequence[str | os.PathLike],
    size: int,
    cache_dir: str | os.PathLike | None = None,
    num_workers: int | None = None,
    progress: bool = True,
    memory_map: bool = True,
) -> tuple[Tensor, list[UnreadableImage]]:
    """Decode and presize every file.

    Args:
        paths: Image files.
        size: Presize ``P`` (the cached images are ``P x P``).
        cache_dir: Folder for the on-disk cache (None: no disk cache; the images are decoded
            into memory). Only a complete, error-free decode is cached.
        num_workers: Decoding threads (default: the number of CPUs).
        progress: Show a progress bar.
        memory_map: Return the disk cache memory-mapped (default), else read whole into
            memory. Without ``cache_dir`` the images are always in memory.

    Returns:
        The images ``(N, 3, P, P)`` uint8 (zeros for unreadable files) and the list of
        unreadable files with their reasons.
    """
    paths = [str(p) for p in paths]
    if size < 8:
        raise ValueError(f"presize must be at least 8 pixels, got {size}")
    workers = num_workers or os.cpu_count() or 1
    shape = (len(paths), 3, size, size)
    if not paths:
        return torch.zeros(shape, dtype=torch.uint8), []
    cache_file = None
    if cache_dir is not None:
        try:
            cache_file = Path(cache_dir) / f"images-{_key(paths, size)}.npy"
        except FileNotFoundError:
            cache_file = None  # a missing file: decoding reports it
    if cache_file is None:
        out = torch.zeros(shape, dtype=torch.uint8)
        return out, _decode_into(out, paths, size, workers, progress)
    with _exclusive(cache_file.with_suffix(".lock")):
        cached = _open_cached(cache_file, len(paths), size, memory_map)
        if cached is not None:
            return cached, []
        try:
            with atomic_path(cache_file) as tmp:
                arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
                errors = _decode_into(torch.from_numpy(arr), paths, size, workers, progress)
                if errors:  # not cached; the temporary file is removed
                    raise _Incomplete(torch.from_numpy(np.array(arr)), errors)
                arr.flush()
                del arr
        except _Incomplete as e:
            return e.images, e.errors
        atomic_write(cache_file.with_suffix(".json"), lambda f: f.write(json.dumps({"n": len(paths), "size": size}).encode()))
        return _open_cached(cache_file, len(paths), size, memory_map), []
