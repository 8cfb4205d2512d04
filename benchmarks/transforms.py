"""Speed of the mitigation transforms: milliseconds for one 300x300 image (CPU) and images
per second for a batch of 64 on the default device (CUDA when present). PAD-UFES-20 photos
from ``$DERMLEARN_DATA``, or synthetic lesions of the same size where the data is absent.

    python benchmarks/transforms.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd
import torch

import dermlearn as dl
from dermlearn.data import data_root
from dermlearn.data.decode import load_image
from dermlearn.data.synthetic import make_lesions
from dermlearn.transforms import (
    CropVignette,
    adjust_gamma,
    auto_gamma,
    correct_illumination,
    crop_boxes,
    detect_vignette,
    remove_hair,
    roi_box,
    shades_of_gray,
)


def timed(f, repeats: int) -> float:
    f()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    root = data_root() / "pad-ufes-20"
    if (root / "labels.csv").exists():
        table = pd.read_csv(root / "labels.csv").head(64)
        imgs = torch.stack([torch.from_numpy(np.array(load_image(root / p))).permute(2, 0, 1) for p in table["image"]])
        masks = torch.stack([torch.from_numpy(np.array(load_image(root / m)))[..., 0] > 127 for m in table["mask"]])
        source = "PAD-UFES-20 300x300 images"
    else:  # a machine without the data (a GPU machine): synthetic lesions of the same size
        les = make_lesions(n=64, size=300, seed=0, confounders=("illumination", "cast"))
        imgs, masks = les.images, les.masks
        source = f"synthetic 300x300 lesions ({root} not found)"
    dev = dl.default_device()
    batch = imgs.to(dev)
    one = imgs[:1]
    ops = {
        "adjust_gamma (uint8 LUT)": (lambda x: adjust_gamma(x, 0.8), True),
        "auto_gamma + adjust": (lambda x: adjust_gamma(x, auto_gamma(x)), True),
        "correct_illumination": (correct_illumination, True),
        "shades_of_gray (p=6)": (shades_of_gray, True),
        "roi crop from mask + resize": (lambda x: crop_boxes(x, [roi_box(m) for m in masks[: len(x)]], 224), True),
        "detect_vignette dark": (lambda x: [detect_vignette(i, method="dark") for i in x], False),
        "detect_vignette auto": (lambda x: [detect_vignette(i) for i in x], False),
        "CropVignette (dark; none found)": (lambda x: CropVignette()(x), True),  # a fresh one: no remembered boxes
        "remove_hair (OpenCV)": (lambda x: [remove_hair(i) for i in x], False),
    }
    print(f"torch {torch.__version__}, device {dev}, threads {torch.get_num_threads()}, {source}")
    print(f"{'operation':<30} {'ms / image (1 image, CPU)':>26} {'img/s (batch 64, ' + dev.type + ')':>24}")
    for name, (f, batched) in ops.items():
        single = timed(lambda f=f: f(one), args.repeats) * 1000
        x = batch if batched else imgs
        rate = len(x) / timed(lambda f=f, x=x: f(x), max(1, args.repeats // 2))
        print(f"{name:<30} {single:>26.2f} {rate:>24.0f}" + ("" if batched else "  (image by image, CPU)"))
    isic = data_root() / "isic-dermoscopy" / "ISIC_0012221.jpg"
    if isic.exists():  # a pale dermoscope rim at full resolution: the rim path runs to the end
        big = torch.from_numpy(np.array(load_image(isic))).permute(2, 0, 1).contiguous()
        ms = timed(lambda: detect_vignette(big), args.repeats) * 1000
        print(f"{'detect_vignette auto, rim':<30} {ms:>26.2f} {'':>24}  (ISIC_0012221, 3008x2000)")


if __name__ == "__main__":
    main()
