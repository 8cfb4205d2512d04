"""Augmented images per second: dermlearn's decode-once cache + batched device augmentation
vs torchvision ImageFolder + DataLoader (num_workers 0 and 2), and fastai's
ImageDataLoaders when fastai is installed, in one run.

Data: the first 500 PAD-UFES-20 images re-encoded once as JPEG (quality 90) into a
temporary folder (not timed). Output 224 px, batch 64, augmentations on both sides:
flips (both axes), rotation up to 30 degrees, zoom (crop of 60-100% of the area),
brightness/contrast/saturation 0.2, ImageNet normalisation.

dermlearn's first epoch includes decoding every file (no disk cache); later epochs use the
in-memory cache. Target: cached epochs >= 2x torchvision's augmented throughput.

    python benchmarks/data_pipeline.py [--n 500] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from PIL import Image


def prepare(n: int, out: Path) -> Path:
    from dermlearn.data import data_root

    table = pd.read_csv(data_root() / "pad-ufes-20" / "labels.csv").head(n)
    for img, dx in zip(table["image"], table["diagnostic"]):
        d = out / dx
        d.mkdir(parents=True, exist_ok=True)
        Image.open(data_root() / "pad-ufes-20" / img).convert("RGB").save(d / (Path(img).stem + ".jpg"), quality=90)
    return out


def consume(batches, apply=None) -> int:
    n = 0
    for x, _ in batches:
        if apply is not None:
            x = apply(x)
        n += x.shape[0]
    return n


def bench_dermlearn(folder: Path, epochs: int, bs: int) -> tuple[float, float]:
    import dermlearn as dl

    t = time.perf_counter()
    data = dl.DermData.from_folder(folder, valid_pct=0.01)
    dls = data.dls(bs=bs, size=224, cache_dir=False, progress=False)
    n = consume(dls.train, lambda x: dls.apply(x.to(dl.default_device()), True))
    first = n / (time.perf_counter() - t)
    t = time.perf_counter()
    n = sum(consume(dls.train, lambda x: dls.apply(x.to(dl.default_device()), True)) for _ in range(epochs))
    return first, n / (time.perf_counter() - t)


def bench_torchvision(folder: Path, epochs: int, bs: int, workers: int) -> tuple[float, float]:
    from torchvision import datasets
    from torchvision import transforms as T

    tfm = T.Compose([
        T.RandomResizedCrop(224, scale=(0.6, 1.0)), T.RandomHorizontalFlip(), T.RandomVerticalFlip(), T.RandomRotation(30),
        T.ColorJitter(0.2, 0.2, 0.2), T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])  # fmt: skip
    ds = datasets.ImageFolder(str(folder), tfm)
    loader = torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=True, num_workers=workers, drop_last=True,
                                         persistent_workers=workers > 0)  # fmt: skip
    t = time.perf_counter()
    n = consume(loader)
    first = n / (time.perf_counter() - t)
    t = time.perf_counter()
    n = sum(consume(loader) for _ in range(epochs))
    return first, n / (time.perf_counter() - t)


def bench_fastai(folder: Path, epochs: int, bs: int) -> tuple[float, float] | None:
    try:
        from fastai.vision.all import ImageDataLoaders, Resize, aug_transforms
    except ImportError:
        return None
    dls = ImageDataLoaders.from_folder(folder, valid_pct=0.01, item_tfms=Resize(280), bs=bs, num_workers=0,
                                       batch_tfms=aug_transforms(size=224, flip_vert=True, max_rotate=30, max_lighting=0.2))  # fmt: skip
    t = time.perf_counter()
    n = consume(dls.train)
    first = n / (time.perf_counter() - t)
    t = time.perf_counter()
    n = sum(consume(dls.train) for _ in range(epochs))
    return first, n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--bs", type=int, default=64)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = prepare(args.n, Path(tmp) / "jpg")
        print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, threads {torch.get_num_threads()}, {args.n} JPEGs -> 224px, batch {args.bs}")
        rows = {"dermlearn": bench_dermlearn(folder, args.epochs, args.bs)}
        for w in (0, 2):
            rows[f"torchvision w{w}"] = bench_torchvision(folder, args.epochs, args.bs, w)
        fa = bench_fastai(folder, args.epochs, args.bs)
        if fa is not None:
            rows["fastai"] = fa
        best_tv = max(rows["torchvision w0"][1], rows["torchvision w2"][1])
        print(f"{'pipeline':<16} {'first epoch img/s':>18} {'later epochs img/s':>19} {'dermlearn x':>12}")
        for name, (first, later) in rows.items():
            print(f"{name:<16} {first:>18.0f} {later:>19.0f} {rows['dermlearn'][1] / later:>12.2f}")
        print(f"cached dermlearn / best torchvision: {rows['dermlearn'][1] / best_tv:.2f}x (target >= 2)")


if __name__ == "__main__":
    main()
