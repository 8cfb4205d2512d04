"""Item tables from image folders, CSV files and the public datasets in ``DERMLEARN_DATA``.

Every builder returns a pandas DataFrame with a ``path`` column (absolute file paths), a
``label`` column (class names as strings) and any metadata columns (kept beside each item).
Archives are unpacked into the cache folder (``$DERMLEARN_CACHE/datasets``), never next to
the data or into the repository.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .cache import default_cache_dir

__all__ = ["IMAGE_EXTENSIONS", "data_root", "folder_table", "csv_table", "unpack"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")


def data_root() -> Path:
    """``$DERMLEARN_DATA``; else ``../shared/data`` seen from the current folder or from any
    folder above it (so notebooks in ``nbs/`` find it too); else ``../shared/data`` seen from
    the repository this package was installed from."""
    env = os.environ.get("DERMLEARN_DATA")
    if env:
        return Path(env).resolve()
    for base in (Path.cwd(), *Path.cwd().parents):
        cand = base / ".." / "shared" / "data"
        if cand.is_dir():
            return cand.resolve()
    return (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()


def unpack(archive: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Extract a .tar.gz once into ``cache_dir/datasets/<name>`` (atomically: into a
    temporary folder, then renamed) and return that folder."""
    archive = Path(archive)
    if not archive.is_file():
        raise FileNotFoundError(f"archive not found: {archive}")
    name = archive.name.split(".")[0]
    dest = Path(cache_dir or default_cache_dir()) / "datasets" / name
    if (dest / ".complete").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=dest.parent))
    try:
        with tarfile.open(archive) as tf:
            tf.extractall(tmp, filter="data")
        (tmp / ".complete").write_text(str(archive))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def folder_table(path: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> pd.DataFrame:
    """One subfolder per class: ``path/<class>/<image>``. Files with other extensions are
    ignored.

    Raises:
        FileNotFoundError: ``path`` is not a folder.
        ValueError: no class folder with images.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    rows = []
    for cls in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(cls.rglob("*")):
            if f.is_file() and f.suffix.lower() in extensions:
                rows.append({"path": str(f.resolve()), "label": cls.name})
    if not rows:
        raise ValueError(f"no images in class subfolders of {root} (expected {root}/<class>/<image> with extensions {', '.join(extensions)})")
    return pd.DataFrame(rows)


def csv_table(
    csv: str | os.PathLike,
    image_col: str = "image",
    label_col: str | None = "label",
    label_cols: Sequence[str] | None = None,
    root: str | os.PathLike | None = None,
    suffix: str = "",
) -> pd.DataFrame:
    """Items from a CSV: a column of image paths (relative to ``root``, default the CSV's
    folder; ``suffix`` appended, e.g. ``'.jpg'`` for ISIC ids) and either a label column or
    one 0/1 column per class (ISIC ground-truth style, ``label_cols``).

    Every other column is kept as metadata.

    Raises:
        FileNotFoundError: the CSV is missing.
        ValueError: a missing column (the available ones are listed), an empty label, or a
            one-hot row without exactly one positive class (the row is named).
    """
    csv = Path(csv)
    if not csv.is_file():
        raise FileNotFoundError(f"CSV file not found: {csv}")
    df = pd.read_csv(csv)
    needed = [image_col] + (list(label_cols) if label_cols is not None else [label_col])
    missing = [c for c in needed if c is not None and c not in df.columns]
    if missing:
        raise ValueError(f"{csv}: missing column(s) {missing}; the columns are {list(df.columns)}")
    base = Path(root) if root is not None else csv.parent
    out = df.drop(columns=[image_col]).copy()
    out.insert(0, "path", [str((base / f"{p}{suffix}").resolve()) for p in df[image_col].astype(str)])
    if label_cols is not None:
        onehot = df[list(label_cols)].to_numpy(dtype=float)
        n_pos = (onehot > 0.5).sum(1)
        bad = [i for i, n in enumerate(n_pos) if n != 1]
        if bad:
            i = bad[0]
            raise ValueError(f"{csv}: row {i + 2} ({df[image_col].iloc[i]}) has {int(n_pos[i])} positive classes among "
                             f"{list(label_cols)}; exactly one is expected ({len(bad)} such rows)")  # fmt: skip
        out["label"] = [label_cols[j] for j in onehot.argmax(1)]
        out = out.drop(columns=list(label_cols))
    else:
        empty = df[label_col].isna() | (df[label_col].astype(str).str.strip() == "")
        if empty.any():
            i = int(empty.to_numpy().nonzero()[0][0])
            raise ValueError(f"{csv}: row {i + 2} ({df[image_col].iloc[i]}) has an empty {label_col!r} ({int(empty.sum())} such rows)")
        out["label"] = df[label_col].astype(str)
        if label_col != "label":
            out = out.drop(columns=[label_col])
    out["_row"] = range(2, len(df) + 2)  # CSV line numbers, for error messages
    return out
