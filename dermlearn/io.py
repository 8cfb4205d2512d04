"""Atomic, safe file writes and safe loads.

A write goes to a temporary file in the destination folder, is flushed and fsync'ed, then
renamed over the destination (``os.replace`` is atomic on POSIX and Windows): a crash at any
moment leaves either the old file or the new one, never a partial file.
Loads never unpickle arbitrary objects (``torch.load(..., weights_only=True)``).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch

__all__ = ["atomic_path", "atomic_torch_save", "atomic_write", "atomic_write_json", "atomic_write_text", "safe_torch_load"]


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(f)`` on a temporary binary file and move it to ``path`` atomically.

    The parent folder is created when missing. On any error the temporary file is removed
    and ``path`` is untouched. The new file gets the permissions a plain ``open(path, 'w')``
    would give: those of the file it replaces, or ``0o666`` less the umask (a temporary
    file's private ``0o600`` would hide models and results from the rest of a team).
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        write(f)
    return Path(path)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """The name of a new, empty temporary file beside ``path``, for writers that need a file
    name rather than a file object (a memory map, a library that opens the file itself).

    When the ``with`` block ends without error the file is fsync'ed and renamed over
    ``path``; on any error it is removed and ``path`` is untouched. Permissions as
    :func:`atomic_write`.

    Example::

        with atomic_path("cache/images.npy") as tmp:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, 3, 64, 64))
            ...  # fill arr
            arr.flush()
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    os.close(fd)
    try:
        if path.exists():
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _create_temp(path: Path) -> tuple[int, str]:
    """A new, empty temporary file beside ``path``, created with mode ``0o666`` (the umask
    applies); returns its descriptor and name."""
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file beside {path}")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", path)


def safe_torch_load(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True`` and a clear error for a missing,
    truncated or tampered file.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file cannot be read as a weights-only torch file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle, ...
        raise ValueError(
            f"{path} ({path.stat().st_size:,} bytes) is not a valid weights-only torch file: it is truncated or "
            f"corrupted, or it holds objects other than tensors and plain containers. torch says: "
            f"{type(e).__name__}: {_first_sentence(str(e))}"
        ) from e


def _first_sentence(text: str) -> str:
    """The first sentence of an error message (torch's run on for several lines), whole."""
    line = text.strip().splitlines()[0] if text.strip() else "(no message)"
    end = line.find(". ")
    return line if end < 0 else line[: end + 1]
