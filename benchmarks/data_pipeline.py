"""Augmented images per second: dermlearn's decode-once cache + batched device augmentation
against the pipelines a user would otherwise build, interleaved over several runs.

Peers: torchvision ImageFolder + DataLoader decoding files every epoch (num_workers 0 and 2);
torchvision's v2 transforms on the same decoded, presized uint8 tensors in memory that
dermlearn's cache holds (per image, so that every image gets its own random draw, as in
dermlearn; and on the whole batch at once, one draw per batch: faster, weaker augmentation);
kornia's batched augmentation on the same tensors (per-image draws) when kornia is installed;
fastai's ImageDataLoaders when fastai is installed.

Data: the first 500 PAD-UFES-20 images re-encoded once as JPEG (quality 90) into a
temporary folder (not timed). Output 224 px float, batch 64, augmentations everywhere:
flips (both axes), rotation up to 30 degrees, zoom (crop of 60-100% of the area),
brightness/contrast/saturation 0.2, ImageNet normalisation.

Each run measures every pipeline's later (cached) epochs, the pipelines in a rotated order
from run to run; the table gives the min / median / max images/s over runs and of
dermlearn's ratio to each peer within a run. dermlearn's first epoch (decoding every file, no
disk cache) is reported once. Targets: >= 2x the best file-decoding torchvision loader,
>= 1.5x torchvision v2 per image on the same tensors. ``--profile`` prints where one cached
dermlearn epoch spends its time (torch.profiler, top operators by self CPU time).

    python benchmarks/data_pipeline.py [--n 500] [--epochs 3] [--runs 5] [--profile]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
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


MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def timed(epoch: Callable[[], int], epochs: int) -> float:
    """Images/s of ``epochs`` calls of ``epoch`` (each returns the images it produced)."""
    t = time.perf_counter()
    n = sum(epoch() for _ in range(epochs))
    return n / (time.perf_counter() - t)


def dermlearn_loaders(folder: Path, bs: int):
    """dermlearn's data and loaders with the first epoch (decoding every file) timed:
    ``(data, dls, epoch, first-epoch img/s)``; ``epoch()`` runs one cached epoch."""
    import dermlearn as dl

    t = time.perf_counter()
    data = dl.DermData.from_folder(folder, valid_pct=0.01)
    dls = data.dls(bs=bs, size=224, cache_dir=False, progress=False)
    dev = dl.default_device()

    def epoch() -> int:
        return consume(dls.train, lambda x: dls.apply(x.to(dev), True))

    n = epoch()
    return data, dls, epoch, n / (time.perf_counter() - t)


def in_memory_epochs(imgs: torch.Tensor, bs: int, augment: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], int]:
    """An epoch over shuffled ``bs``-image batches of the uint8 tensor ``imgs`` ``(N, 3, P, P)``
    (complete batches only, as dermlearn's training loader), each through ``augment``."""

    def epoch() -> int:
        order = torch.randperm(len(imgs))
        n = 0
        for i in range(0, len(order) - bs + 1, bs):
            n += augment(imgs[order[i : i + bs]]).shape[0]
        return n

    return epoch


def torchvision_v2(per_image: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """torchvision v2 on a uint8 batch ``(B, 3, P, P)`` -> float ``(B, 3, 224, 224)``: each
    image with its own draw (``per_image``), or the whole batch with one draw."""
    from torchvision.transforms import v2

    tfm = v2.Compose([
        v2.RandomResizedCrop(224, scale=(0.6, 1.0), antialias=True), v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(),
        v2.RandomRotation(30), v2.ColorJitter(0.2, 0.2, 0.2), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD),
    ])  # fmt: skip
    if per_image:
        return lambda x: torch.stack([tfm(im) for im in x])
    return tfm


def kornia_augment() -> Callable[[torch.Tensor], torch.Tensor] | None:
    """kornia's batched augmentation (a draw per image) on a uint8 batch, or None without kornia."""
    try:
        import kornia.augmentation as K
    except ImportError:
        return None
    aug = K.AugmentationSequential(
        K.RandomResizedCrop((224, 224), scale=(0.6, 1.0)), K.RandomHorizontalFlip(), K.RandomVerticalFlip(),
        K.RandomRotation(30.0), K.ColorJitter(0.2, 0.2, 0.2), K.Normalize(torch.tensor(MEAN), torch.tensor(STD)),
    )  # fmt: skip
    return lambda x: aug(x.float().div_(255))


def profile(epoch: Callable[[], int], top: int = 12) -> None:
    """Print the operators of one ``epoch`` by self CPU time, and how much of the epoch's
    wall time they account for (OpenCV's warp of uint8 batches on the CPU, and Python, are
    outside torch.profiler's operators)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        epoch()
        wall_ms = (time.perf_counter() - t) * 1e3
    averages = prof.key_averages()
    print(averages.table(sort_by="self_cpu_time_total", row_limit=top))
    torch_ms = sum(e.self_cpu_time_total for e in averages) / 1e3
    print(f"one cached epoch: {wall_ms:.0f} ms wall under the profiler; torch operators {torch_ms:.0f} ms "
          f"({torch_ms / wall_ms:.0%}), the rest outside torch (OpenCV's warp, Python)")  # fmt: skip


def torchvision_files(folder: Path, bs: int, workers: int) -> Callable[[], int]:
    """An epoch of torchvision's ImageFolder + DataLoader (decoding files every epoch)."""
    from torchvision import datasets
    from torchvision import transforms as T

    tfm = T.Compose([
        T.RandomResizedCrop(224, scale=(0.6, 1.0)), T.RandomHorizontalFlip(), T.RandomVerticalFlip(), T.RandomRotation(30),
        T.ColorJitter(0.2, 0.2, 0.2), T.ToTensor(), T.Normalize(MEAN, STD),
    ])  # fmt: skip
    ds = datasets.ImageFolder(str(folder), tfm)
    loader = torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=True, num_workers=workers, drop_last=True,
                                         persistent_workers=workers > 0)  # fmt: skip
    return lambda: consume(loader)


def fastai_files(folder: Path, bs: int) -> Callable[[], int] | None:
    """An epoch of fastai's ImageDataLoaders, or None without fastai."""
    try:
        from fastai.vision.all import ImageDataLoaders, Resize, aug_transforms
    except ImportError:
        return None
    dls = ImageDataLoaders.from_folder(folder, valid_pct=0.01, item_tfms=Resize(280), bs=bs, num_workers=0,
                                       batch_tfms=aug_transforms(size=224, flip_vert=True, max_rotate=30, max_lighting=0.2))  # fmt: skip
    return lambda: consume(dls.train)


def spread(values: list[float], fmt: str) -> str:
    return f"{min(values):{fmt}} / {statistics.median(values):{fmt}} / {max(values):{fmt}}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per pipeline and run")
    ap.add_argument("--bs", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5, help="interleaved runs")
    ap.add_argument("--profile", action="store_true", help="print where a cached dermlearn epoch spends its time")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = prepare(args.n, Path(tmp) / "jpg")
        print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, threads {torch.get_num_threads()}, {args.n} JPEGs -> 224px, "
              f"batch {args.bs}, {args.epochs} epochs x {args.runs} interleaved runs")  # fmt: skip
        data, dls, derm_epoch, first = dermlearn_loaders(folder, args.bs)
        print(f"dermlearn first epoch (decoding every file): {first:.0f} img/s")
        imgs = data.images(280, cache_dir=False, progress=False)  # the presize dls(size=224) decoded at
        imgs = imgs[torch.from_numpy(data.indices("train"))]  # the tensor dermlearn's training loader gathers from
        pipelines: dict[str, Callable[[], int]] = {
            "dermlearn": derm_epoch,
            "torchvision files w0": torchvision_files(folder, args.bs, 0),
            "torchvision files w2": torchvision_files(folder, args.bs, 2),
            "torchvision v2 in memory, per image": in_memory_epochs(imgs, args.bs, torchvision_v2(per_image=True)),
            "torchvision v2 in memory, per batch": in_memory_epochs(imgs, args.bs, torchvision_v2(per_image=False)),
        }
        ka = kornia_augment()
        if ka is not None:
            pipelines["kornia in memory"] = in_memory_epochs(imgs, args.bs, ka)
        fa = fastai_files(folder, args.bs)
        if fa is not None:
            pipelines["fastai files"] = fa
        for epoch in pipelines.values():  # warm up: workers started, first-call costs paid
            epoch()
        names = list(pipelines)
        speed: dict[str, list[float]] = {k: [] for k in names}
        for r in range(args.runs):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                speed[name].append(timed(pipelines[name], args.epochs))
            print(f"run {r + 1}: " + ", ".join(f"{k} {speed[k][-1]:.0f}" for k in names))
        print(f"\n{'pipeline':<38} {'img/s min / median / max':>26} {'dermlearn x (min / median / max)':>34}")
        for name in names:
            ratio = [d / p for d, p in zip(speed["dermlearn"], speed[name])]
            print(f"{name:<38} {spread(speed[name], '.0f'):>26} {spread(ratio, '.2f'):>34}")
        best_files = [d / max(a, b) for d, a, b in zip(speed["dermlearn"], speed["torchvision files w0"], speed["torchvision files w2"])]
        v2 = [d / p for d, p in zip(speed["dermlearn"], speed["torchvision v2 in memory, per image"])]
        print(f"dermlearn / best file-decoding torchvision: {spread(best_files, '.2f')} (target >= 2)")
        print(f"dermlearn / torchvision v2 in memory, per image: {spread(v2, '.2f')} (target >= 1.5)")
        if args.profile:
            profile(derm_epoch)


if __name__ == "__main__":
    main()
