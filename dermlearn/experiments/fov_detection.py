"""The field-of-view detector on images it was not tuned on.

:func:`~dermlearn.transforms.vignette.detect_vignette`'s thresholds were set on PAD-UFES-20
photos and two ISIC dermoscopy images. This experiment measures it on images it has never
seen, all drawn from DermaMNIST's official test split (HAM10000 dermoscopy thumbnails):

* **clean** test images at 28 px and upsampled to 224 px: every detection is a false one;
* **MedMNIST-C black corners** (Di Salvo et al., 2024): the test images at 28 px with the
  corners outside a centred circle set to black, at the five severities of ``medmnistc``
  0.1.0's DermaMNIST set (radius 1.10, 1.05, 1.00, 0.90 and 0.95 times half the side;
  :func:`black_corner` draws the circle as ``medmnistc`` does, with OpenCV; a test compares
  the two where ``medmnistc`` is installed);
* **synthetic dermoscope fields** on the test images upsampled to 224 px, with parameters
  drawn from ranges set here, independently of the detector's tuning: a dark vignette
  (level 0-45 of 255, noise, a soft edge of 0-3 px) or a pale, nearly grey plastic rim
  (level 140-220, chroma under 8), the circle's centre up to 8 % of the side off centre and
  its radius 0.38-0.62 of the side.

Per condition and method (``dark``: the dark-vignette detector :class:`CropVignette` uses by
default; ``auto``: dark, then the pale-rim detector), the detection rate with its 95 % Wilson
interval, and where the circle is known, the rate of circles *located* (centre and radius
within ``--tolerance`` of the radius of the truth) and the median radius error.

    dermlearn experiment fov-detection [--quick] [--n 300] [--out DIR]
"""

from __future__ import annotations

import argparse
import math

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from dermlearn.data import DermData
from dermlearn.evaluation.proportion import wilson_interval
from dermlearn.transforms.circle import Circle
from dermlearn.transforms.vignette import detect_vignette

from .options import parse_args
from .record import Record

__all__ = ["BLACK_CORNER_SEVERITIES", "black_corner", "main", "synthetic_field"]

BLACK_CORNER_SEVERITIES = (1.10, 1.05, 1.00, 0.90, 0.95)
"""The radius of MedMNIST-C's DermaMNIST black corners, severities 1-5, as a multiple of
half the image side (``medmnistc`` 0.1.0's registry; severity 4 is the smallest circle)."""


def black_corner(image: Tensor, multiplier: float) -> tuple[Tensor, Circle]:
    """MedMNIST-C's black corner: the pixels outside a circle centred at ``(W // 2, H // 2)``
    with radius ``int(multiplier * min(W // 2, H // 2, W - W // 2, H - H // 2))``, drawn
    filled with OpenCV, set to 0. ``image``: uint8 ``(3, H, W)``. Returns the image and the
    circle in pixel-centre coordinates (``x + 0.5``)."""
    _, h, w = image.shape
    cx, cy = w // 2, h // 2
    r = int(min(cx, cy, w - cx, h - cy) * multiplier)
    inside = np.zeros((h, w), np.uint8)
    cv2.circle(inside, (cx, cy), r, 255, thickness=-1)
    out = image.clone()
    out[:, torch.from_numpy(inside == 0)] = 0
    return out, Circle(cx + 0.5, cy + 0.5, float(r))


def synthetic_field(image: Tensor, kind: str, rng: np.random.Generator) -> tuple[Tensor, Circle, dict]:
    """A dermoscope's field of view drawn on ``image`` (uint8 ``(3, S, S)``): outside a
    circle, a dark vignette (``kind='dark'``) or a pale grey rim (``kind='pale'``); every
    parameter drawn from ``rng`` (see the module docstring). Returns the image, the circle
    and the parameters."""
    if kind not in ("dark", "pale"):
        raise ValueError(f"kind must be 'dark' or 'pale', got {kind!r}")
    s = image.shape[-1]
    offset, angle = rng.uniform(0, 0.08) * s, rng.uniform(0, 2 * math.pi)
    cx, cy = s / 2 + offset * math.cos(angle), s / 2 + offset * math.sin(angle)
    r = rng.uniform(0.38, 0.62) * s
    soft = rng.uniform(0, 3)
    yy, xx = np.mgrid[0:s, 0:s] + 0.5
    outside = (np.hypot(xx - cx, yy - cy) > r).astype(np.float32)
    if soft > 0:
        outside = cv2.GaussianBlur(outside, (0, 0), soft)
    if kind == "dark":
        level = rng.uniform(0, 45) + np.zeros(3)
    else:
        level = rng.uniform(140, 220) + rng.uniform(-4, 4, size=3)  # nearly grey: chroma under 8
    noise = rng.normal(0, rng.uniform(0, 6), size=(3, s, s))
    fill = torch.from_numpy(np.clip(level[:, None, None] + noise, 0, 255)).float()
    w = torch.from_numpy(outside)[None]
    out = (image.float() * (1 - w) + fill * w).round().clamp(0, 255).to(torch.uint8)
    params = {"offset": offset / s, "radius": r / s, "soft_px": soft, "level": float(level.mean())}
    return out, Circle(cx, cy, r), params


def _located(found: Circle | None, truth: Circle | None, tolerance: float) -> float:
    if truth is None:
        return float("nan")
    if found is None:
        return 0.0
    return float(math.hypot(found.cx - truth.cx, found.cy - truth.cy) <= tolerance * truth.r
                 and abs(found.r - truth.r) <= tolerance * truth.r)  # fmt: skip


def _conditions(images: Tensor, seed: int) -> list[tuple[str, str, int, list[tuple[Tensor, Circle | None, dict]]]]:
    """(condition, severity label, side, [(image, true circle or None, parameters)])."""
    rng = np.random.default_rng(seed)
    up = F.interpolate(images.float(), size=224, mode="bilinear", align_corners=False).round().clamp(0, 255).to(torch.uint8)
    out = [("clean", "-", 28, [(x, None, {}) for x in images]), ("clean", "-", 224, [(x, None, {}) for x in up])]
    for sev, m in enumerate(BLACK_CORNER_SEVERITIES, 1):
        rows = []
        for x in images:
            y, c = black_corner(x, m)
            rows.append((y, c, {"multiplier": m}))
        out.append(("MedMNIST-C black corner", str(sev), 28, rows))
    for kind in ("dark", "pale"):
        out.append((f"synthetic {kind} field", "-", 224, [synthetic_field(x, kind, rng) for x in up]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="dermlearn experiment fov-detection", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="test images per condition (default: %(default)s)")
    ap.add_argument("--methods", nargs="+", choices=["dark", "auto"], default=["dark", "auto"])
    ap.add_argument("--tolerance", type=float, default=0.08,
                    help="a circle is located when its centre and radius are within this fraction of the true radius")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0, help="draws the test images and the synthetic fields")
    ap.add_argument("--quick", action="store_true", help="30 images per condition")
    ap.add_argument("--out", default="results/fov_detection", help="output folder (default: %(default)s)")
    args = parse_args(ap, argv, {"n": 30})
    if args.n < 1:
        ap.error(f"--n must be at least 1, got {args.n}")
    rec = Record("fov-detection", args.out, args)
    data = DermData.dermamnist()
    test = data.indices("test")
    pick = np.sort(np.random.default_rng(args.seed).choice(test, size=min(args.n, len(test)), replace=False))
    images = data.images(28, progress=False)[torch.from_numpy(pick)]
    rows, per_image = [], []
    conditions = _conditions(images, args.seed)
    from tqdm.auto import tqdm

    bar = tqdm(total=sum(len(c[3]) for c in conditions) * len(args.methods), desc="fov-detection", mininterval=1.0)
    for condition, severity, side, items in conditions:
        for method in args.methods:
            found = []
            for i, (x, truth, params) in enumerate(items):
                c = detect_vignette(x, method=method)
                found.append(c)
                per_image.append({"condition": condition, "severity": severity, "side": side, "method": method, "image": int(pick[i]),
                                  "detected": c is not None, "source": c.source if c else "",
                                  "located": _located(c, truth, args.tolerance), **params})  # fmt: skip
                bar.update(1)
            k, n = sum(c is not None for c in found), len(found)
            lo, hi = wilson_interval(k, n)
            truths = [t for _, t, _ in items]
            located = [_located(c, t, args.tolerance) for c, t in zip(found, truths)]
            r_err = [abs(c.r - t.r) / t.r for c, t in zip(found, truths) if c is not None and t is not None]
            rows.append({"condition": condition, "severity": severity, "side": side, "method": method, "images": n,
                         "detected": k, "rate": k / n, "low": lo, "high": hi,
                         "located rate": float(np.mean(located)) if truths[0] is not None else float("nan"),
                         "median radius error": float(np.median(r_err)) if r_err else float("nan")})  # fmt: skip
    bar.close()
    table = pd.DataFrame(rows)
    rec.save_table(pd.DataFrame(per_image), "per_image")
    rec.save_figure(plot_rates(table), "results.png")
    md = rec.finish(table, {c: ".3f" for c in ("rate", "low", "high", "located rate", "median radius error")},
                    missing={"located rate": "-", "median radius error": "-"}, extra={"images": [int(i) for i in pick]})  # fmt: skip
    print(md)
    return 0


def plot_rates(table: pd.DataFrame):
    """Detection rate with its 95 % Wilson interval per condition, one bar per method.
    Returns the Figure."""
    import matplotlib.pyplot as plt

    labels = [f"{c}{'' if s == '-' else ' ' + s} ({p} px)" for c, s, p in dict.fromkeys(zip(table["condition"], table["severity"], table["side"]))]
    methods = list(dict.fromkeys(table["method"]))
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(labels) + 1.2), layout="constrained")
    h = 0.8 / len(methods)
    for j, m in enumerate(methods):
        t = table[table["method"] == m]
        y = np.arange(len(t)) + j * h
        ax.barh(y, t["rate"], height=h, color=f"C{j}", label=m)
        ax.errorbar(t["rate"], y, xerr=[t["rate"] - t["low"], t["high"] - t["rate"]], fmt="none", ecolor="black", capsize=2)
    ax.set_yticks(np.arange(len(labels)) + h * (len(methods) - 1) / 2, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of images with a field of view detected (95% Wilson interval)")
    ax.legend(title="method", fontsize=8)
    ax.set_title("Field-of-view detector on DermaMNIST test images it was not tuned on")
    return fig


if __name__ == "__main__":
    raise SystemExit(main())
