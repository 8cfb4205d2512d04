"""How the command line names a dataset: ``--data`` is a known name or a path."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_data_args", "data_from_args"]

KNOWN = ("pad-ufes-20", "dermamnist", "cifar10")


def add_data_args(p: argparse.ArgumentParser, default: str | None = None) -> None:
    """The data options; ``--data`` is required unless a ``default`` is given."""
    g = p.add_argument_group("data")
    g.add_argument("--data", required=default is None, default=default,
                   help="a folder with one subfolder per class, a CSV file, or one of: " + ", ".join(KNOWN)
                   + " (from $DERMLEARN_DATA)" + (f" (default: {default})" if default else ""))  # fmt: skip
    g.add_argument("--image-col", default="image", help="CSV column of image paths (default: %(default)s)")
    g.add_argument("--label-col", default="label", help="CSV column of class names (default: %(default)s)")
    g.add_argument("--label-cols", nargs="+", help="CSV columns with one 0/1 column per class (ISIC style) instead of --label-col")
    g.add_argument("--group-col", help="CSV column of patient/lesion ids: split by group so no group is on both sides")
    g.add_argument("--valid-col", help="CSV column marking validation rows (true/1/valid)")
    g.add_argument("--root", help="folder the CSV image paths are relative to (default: the CSV's folder)")
    g.add_argument("--suffix", default="", help="appended to CSV image paths, e.g. .jpg for ISIC ids")
    g.add_argument("--modality", choices=["clinical", "dermoscopic"],
                   help="what the images are, for a folder or CSV: photos of the skin (clinical) or dermoscopy images; kept "
                        "in the model file, whose predictions then warn about images of the other kind (default: known for "
                        "pad-ufes-20 and dermamnist, else not recorded)")  # fmt: skip
    g.add_argument("--skip-bad", action="store_true", help="drop unreadable image files with a warning listing them "
                   "(default: stop with an error listing them)")  # fmt: skip
    g.add_argument("--seed", type=int, default=0, help="seed of the split, sampling and augmentation (default: %(default)s)")


def data_from_args(args: argparse.Namespace):
    """Build the DermData that ``args`` describe (FileNotFoundError / ValueError when wrong)."""
    from dermlearn.data import DermData

    name = args.data
    if name == "pad-ufes-20":
        return DermData.pad_ufes_20(seed=args.seed)
    if name == "dermamnist":
        return DermData.dermamnist()
    if name == "cifar10":
        return DermData.cifar10(seed=args.seed)
    path = Path(name)
    if not path.exists():
        raise FileNotFoundError(f"--data {name}: no such file or folder (and not one of {', '.join(KNOWN)})")
    modality = getattr(args, "modality", None)
    if path.is_dir():
        return DermData.from_folder(path, seed=args.seed, modality=modality)
    if path.suffix.lower() != ".csv":
        raise ValueError(f"--data {name}: expected a folder or a .csv file")
    return DermData.from_csv(path, image_col=args.image_col, label_col=None if args.label_cols else args.label_col,
                             label_cols=args.label_cols, root=args.root, suffix=args.suffix, group_col=args.group_col,
                             valid_col=args.valid_col, seed=args.seed, modality=modality)  # fmt: skip
