"""Do the photometric corrections and a lesion crop help on real photos? (PAD-UFES-20)

Three models, same architecture, epochs, split (grouped by patient) and seed:

* **A**, trained on the photos as they are; evaluated on the clean validation photos, on a
  degraded copy (every image: a random illumination ramp with its dark side at 0.4-0.7, a
  gamma in [0.6, 1.6] and a colour cast in [0.8, 1.2]; fixed seed), and on the degraded copy
  with each correction applied at test time (illumination correction, automatic gamma,
  Shades of Gray) and with all three;
* **B**, trained and evaluated with all three corrections in its preprocessing;
* **C**, trained and evaluated on crops around the lesion masks (field of view), compared
  with A on the full view.

Prints and writes a table (CSV and Markdown) with accuracy and balanced accuracy per arm.

    python -m dermlearn.experiments.photometric [--quick] [--out DIR] [--arch resnet18] [--epochs 8]
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from dermlearn.data import DermData
from dermlearn.data.decode import load_image, presize_image
from dermlearn.data.loader import CachedItems, TensorLoader
from dermlearn.evaluation.metrics import accuracy, balanced_accuracy
from dermlearn.models import create_model
from dermlearn.training.learner import Learner
from dermlearn.transforms import (
    AutoGamma,
    CorrectIllumination,
    RandomColourCast,
    RandomGamma,
    RandomIllumination,
    ShadesOfGray,
)
from dermlearn.transforms.normalize import Normalize
from dermlearn.transforms.resize import Resize
from dermlearn.transforms.saliency import crop_boxes, roi_box

from .options import QUICK_FIT, add_fit_args, parse_args
from .plots import plot_bars
from .record import Record


def degrade(images: torch.Tensor, seed: int) -> torch.Tensor:
    """Illumination ramp, gamma and colour cast on every image (fixed seed)."""
    ill = RandomIllumination((0.4, 0.7), p=1.0, seed=seed)
    gam = RandomGamma((0.6, 1.6), p=1.0, seed=seed + 1)
    cast = RandomColourCast((0.8, 1.2), p=1.0, seed=seed + 2)
    x = ill(images)
    x = gam(x)
    return cast(x)


def evaluate(learn: Learner, images: torch.Tensor, labels: torch.Tensor, tfms: list, size: int) -> dict[str, float]:
    """Accuracy and balanced accuracy of ``learn`` on ``images`` with ``tfms`` before the
    resize and normalisation (the learner's own preprocessing is replaced for this call)."""
    old = learn.dls.batch_tfms
    learn.dls.batch_tfms = [*tfms, Resize(size), Normalize()]
    try:
        probs, targs = learn.get_preds(dl=TensorLoader(CachedItems(images, labels), 64))
    finally:
        learn.dls.batch_tfms = old
    return {"accuracy": float(accuracy(probs, targs)), "balanced_accuracy": float(balanced_accuracy(probs, targs))}


def lesion_crops(data: DermData, presize: int, margin: float = 0.15) -> torch.Tensor:
    """Every image cropped to a square around its lesion mask (presized like the images)."""
    imgs = data.images(presize, progress=False)
    masks = torch.stack([presize_image(load_image(m), presize)[0] > 127 for m in data.items["mask"]])
    boxes = [roi_box(m, theta=0.5, margin=margin) for m in masks]
    return crop_boxes(imgs, boxes, presize)


def train(data: DermData, args, tfms=()) -> Learner:
    dls = data.dls(bs=args.bs, size=args.size, seed=args.seed, progress=False, tfms=list(tfms))
    torch.manual_seed(args.seed)
    learn = Learner(dls, create_model(args.arch, data.c), metrics=[accuracy, balanced_accuracy], progress=False)
    learn.fit_one_cycle(args.epochs, args.lr)
    return learn


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="dermlearn experiment photometric", description=__doc__.split("\n\n")[0])
    add_fit_args(ap)
    ap.add_argument("--out", default="results/photometric", help="output folder (default: %(default)s)")
    args = parse_args(ap, argv, QUICK_FIT)
    rec = Record("photometric", args.out, args)
    data = DermData.pad_ufes_20(seed=args.seed)
    presize = max(args.size, round(1.25 * args.size))
    corrections = {"illumination": [CorrectIllumination()], "auto gamma": [AutoGamma()], "shades of gray": [ShadesOfGray()]}
    all3 = [CorrectIllumination(), AutoGamma(), ShadesOfGray()]

    a = train(data, args)
    rec.add_history(a.recorder.values, model="A")
    va = a.dls.valid.dataset
    clean, labels = va.images, va.labels
    bad = degrade(clean, seed=args.seed + 100)
    rows = [("A: trained as is", "clean", "none", evaluate(a, clean, labels, [], args.size)),
            ("A: trained as is", "degraded", "none", evaluate(a, bad, labels, [], args.size))]  # fmt: skip
    for name, tf in corrections.items():
        rows.append(("A: trained as is", "degraded", name + " at test", evaluate(a, bad, labels, tf, args.size)))
    rows.append(("A: trained as is", "degraded", "all three at test", evaluate(a, bad, labels, all3, args.size)))
    rows.append(("A: trained as is", "clean", "all three at test", evaluate(a, clean, labels, all3, args.size)))

    b = train(data, args, tfms=all3)
    rec.add_history(b.recorder.values, model="B")
    rows.append(("B: all three in training", "clean", "all three", evaluate(b, clean, labels, all3, args.size)))
    rows.append(("B: all three in training", "degraded", "all three", evaluate(b, bad, labels, all3, args.size)))

    crops = lesion_crops(data, presize)
    c = train(data.with_images(presize, crops), args)
    rec.add_history(c.recorder.values, model="C")
    vc = c.dls.valid.dataset
    rows.append(("C: lesion crop (FoV)", "clean, cropped", "none", evaluate(c, vc.images, vc.labels, [], args.size)))

    table = pd.DataFrame([{"model": m, "validation images": v, "correction": k, **r} for m, v, k, r in rows])
    table = table.rename(columns={"balanced_accuracy": "balanced accuracy"})
    shown = table.assign(arm=table["model"].str[:2] + " " + table["validation images"] + ", " + table["correction"])
    rec.save_figure(plot_bars(shown, "arm", ["accuracy", "balanced accuracy"], "photometric corrections (PAD-UFES-20)"), "results.png")
    md = rec.finish(table, formats={"accuracy": ".3f", "balanced accuracy": ".3f"}, extra={"data": repr(data), "n_valid": int(len(labels))})
    print(md)
    print(f"{len(labels)} validation photos, {args.arch} at {args.size}px, {args.epochs} epochs, seed {args.seed}; "
          f"wrote {rec.out}/results.csv, results.md, history.csv, results.png, config.json")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
