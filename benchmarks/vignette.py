"""Dermoscope vignettes: does ``CropVignette`` find them, leave other photos alone, and what
does cropping to the field do to accuracy?

Synthetic lesions (the demo's generator and confounders, ``--size`` px) get a black vignette: the image is
black outside a circle of radius 0.45-0.65 of the side, centred within 5% of the image
centre (at 0.5 and above the circle leaves the image: a partial vignette, dark corners).
Two models are trained (``--arch``, one-cycle, ``--epochs``) on 1,200 images of which half
are vignetted, one with ``CropVignette`` in its preprocessing (``tfms=``, as a user would
add it) and one without. Both are tested on 400 new images, clean and vignetted.
Prints the detection rate on vignetted images, the false detections on clean ones, and
accuracy per model and test set, with the time ``CropVignette`` costs per image.

    python benchmarks/vignette.py [--arch simple_cnn] [--size 64] [--epochs 6] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

import dermlearn as dl
from dermlearn.data.synthetic import CONFOUNDERS, SyntheticLesions, make_lesions
from dermlearn.transforms import CropVignette, field_boxes


def add_vignettes(x: Tensor, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
    """Black outside a random circle per image (radius 0.45-0.65 of the side, centre within
    5%); also returns the share of each image that is black."""
    b, _, h, w = x.shape
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    out, share = x.clone(), torch.zeros(b)
    for i in range(b):
        r = rng.uniform(0.45, 0.65) * w
        cx, cy = w / 2 + rng.uniform(-0.05, 0.05) * w, h / 2 + rng.uniform(-0.05, 0.05) * h
        outside = torch.hypot(xx - cx, yy - cy) > r
        out[i][:, outside] = 10
        share[i] = outside.float().mean()
    return out, share


def loader(x: Tensor, y: Tensor, bs: int, shuffle: bool = False, seed: int = 0) -> DataLoader:
    ds = SyntheticLesions(x, y, torch.zeros(len(x), 1, 1, dtype=torch.bool), [str(c) for c in range(int(y.max()) + 1)])
    return DataLoader(ds, batch_size=bs, shuffle=shuffle, drop_last=shuffle, generator=torch.Generator().manual_seed(seed))


def train(x: Tensor, y: Tensor, args: argparse.Namespace, tfms: list) -> dl.Learner:
    """One-cycle training on ``x`` (the first sixth held out for validation), ``tfms`` before the normalisation."""
    n_valid = len(x) // 6
    dls = dl.DataLoaders(loader(x[n_valid:], y[n_valid:], 32, True, args.seed), loader(x[:n_valid], y[:n_valid], 64),
                         batch_tfms=[*tfms, dl.Normalize()])  # fmt: skip
    torch.manual_seed(args.seed)
    learn = dl.Learner(dls, dl.create_model(args.arch, int(y.max()) + 1), metrics=[dl.accuracy], progress=False, device="cpu")
    learn.fit_one_cycle(args.epochs, lr_max=3e-3 if args.arch != "simple_cnn" else 1e-2)
    return learn


def accuracy(learn: dl.Learner, x: Tensor, y: Tensor) -> float:
    probs, targets = learn.get_preds(dl=loader(x, y, 100))
    return float((probs.argmax(1) == targets).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="simple_cnn")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t_start = time.time()
    rng = np.random.default_rng(args.seed)
    # the demo's lesions: 30% of them with each of the study's confounders (illumination, gamma, cast, wide view)
    train_set = make_lesions(n=1200, size=args.size, seed=args.seed, confounders=CONFOUNDERS, confound_p=0.3)
    test_set = make_lesions(n=400, size=args.size, seed=args.seed + 1, confounders=CONFOUNDERS, confound_p=0.3)
    x_tr, y_tr = train_set.images.clone(), train_set.labels
    half = torch.from_numpy(rng.random(len(x_tr)) < 0.5)
    x_tr[half] = add_vignettes(x_tr[half], rng)[0]
    clean, y_te = test_set.images, test_set.labels
    framed, share = add_vignettes(clean, rng)

    t = time.perf_counter()
    found = torch.tensor([b is not None for b in field_boxes(framed)])
    ms = (time.perf_counter() - t) / len(framed) * 1000
    false = sum(b is not None for b in field_boxes(clean))
    step = CropVignette()  # as in training: batches of 64, the same stored images every epoch
    epoch_ms = []
    for _ in range(2):
        t = time.perf_counter()
        for i in range(0, len(framed), 64):
            step(framed[i : i + 64])
        epoch_ms.append((time.perf_counter() - t) / len(framed) * 1000)
    print(f"{args.arch} at {args.size} px, {args.epochs} epochs, seed {args.seed}; torch {torch.__version__}")
    print(f"false detections on clean images: {false}/{len(clean)}; {ms:.2f} ms per image (detection, CPU)")
    print(f"CropVignette in batches of 64: first epoch {epoch_ms[0]:.2f} ms per image, later epochs {epoch_ms[1]:.2f} "
          f"(boxes remembered), ratio {epoch_ms[1] / epoch_ms[0]:.3f}")  # fmt: skip
    print("vignettes found, by the share of the image they blacken:")
    for lo, hi in ((0.0, 0.03), (0.03, 0.10), (0.10, 1.0)):
        m = (share >= lo) & (share < hi)
        print(f"  {lo:>4.0%} - {hi:<4.0%} {int(found[m].sum()):>4}/{int(m.sum()):<4}")

    rows = []
    for name, tfms in (("without CropVignette", []), ("with CropVignette", [CropVignette()])):
        learn = train(x_tr, y_tr, args, tfms)
        rows.append((name, accuracy(learn, clean, y_te), accuracy(learn, framed, y_te)))
    print(f"\n{'trained (half the images vignetted)':<36} {'clean test':>10} {'vignetted test':>15}")
    for name, a_clean, a_framed in rows:
        print(f"{name:<36} {a_clean:>10.3f} {a_framed:>15.3f}")
    print(f"\n{time.time() - t_start:.0f} s")


if __name__ == "__main__":
    main()
