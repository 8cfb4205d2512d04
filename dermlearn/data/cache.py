"""Decode a list of image files once into one uint8 tensor ``(N, 3, P, P)``, in parallel,
optionally persisted on disk so that a second run skips decoding.

The disk cache is keyed by the files (path, size, modification time), the presize and the
cache format version; it is written atomically (temp file + rename) and read back in one read.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dermlearn.io import atomic_write

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


def decode_all(
    paths: Sequence[str | os.PathLike],
    size: int,
    cache_dir: str | os.PathLike | None = None,
    num_workers: int | None = None,
    progress: bool = True,
) -> tuple[Tensor, list[UnreadableImage]]:
    """Decode and presize every file.

    Args:
        paths: Image files.
        size: Presize ``P`` (the cached images are ``P x P``).
        cache_dir: Folder for the on-disk cache (None: no disk cache). Only a complete,
            error-free decode is cached.
        num_workers: Decoding threads (default: the number of CPUs).
        progress: Show a progress bar.

    Returns:
        The images ``(N, 3, P, P)`` uint8 (zeros for unreadable files) and the list of
        unreadable files with their reasons.
    """
    paths = [str(p) for p in paths]
    if size < 8:
        raise ValueError(f"presize must be at least 8 pixels, got {size}")
    cache_file = None
    if cache_dir is not None:
        try:
            cache_file = Path(cache_dir) / f"images-{_key(paths, size)}.npy"
        except FileNotFoundError:
            cache_file = None  # a missing file: decoding reports it
        if cache_file is not None and cache_file.is_file():
            arr = np.load(cache_file)
            if arr.shape == (len(paths), 3, size, size) and arr.dtype == np.uint8:
                return torch.from_numpy(arr), []
    out = torch.zeros(len(paths), 3, size, size, dtype=torch.uint8)
    errors: list[UnreadableImage] = []
    workers = num_workers or os.cpu_count() or 1
    from tqdm.auto import tqdm

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(lambda p: _decode_one(p, size), paths, chunksize=16)
        for i, r in enumerate(tqdm(results, total=len(paths), desc=f"decoding {len(paths)} images at {size}px", disable=not progress, leave=False)):
            if isinstance(r, UnreadableImage):
                errors.append(r)
            else:
                out[i] = r
    if cache_file is not None and not errors:
        atomic_write(cache_file, lambda f: np.save(f, out.numpy()))
        atomic_write(cache_file.with_suffix(".json"), lambda f: f.write(json.dumps({"n": len(paths), "size": size}).encode()))
    return out, errors
