"""Two-pass prediction (field of view): does re-predicting a Grad-CAM crop help, and does it
matter whether the crop is cut from the model's input or from the full-resolution photo?

For each test image: the full view (one pass); ``two_pass_predict`` averaging the full view
with a crop cut from the model-sized image ("input crop", enlarged, no new detail) or from
the photo at its own resolution ("photo crop", ``source=``); the photo crop's probabilities
alone ("replace"); the photo crop boxing only the connected hot region that holds
Grad-CAM's maximum ("peak region", ``region='peak'``); the photo crop with the box from the
Grad-CAM of the block before the default one ("finer CAM", twice the map's resolution); and,
as a ceiling, the photo cropped to its lesion mask.
Prints accuracy and balanced accuracy per arm, each arm's difference from the full view
with the number of images whose prediction it fixed and broke, the mean share of the photo
its crop keeps and the share of images where that is (nearly) all of it, on two test sets:

* **synthetic wide views**: the model is trained at ``--size`` on the demo's synthetic
  lesions (30% of them small in a wide field of view) and tested on 400 new images, all
  wide views, drawn at 4x the model's side: the study's situation (a small lesion in a
  phone photo; its P[blister] 0.547 -> 1.0);
* **PAD-UFES-20 originals** (84 photos, 218-2352 px, already framed on the lesion): the
  model is trained on the 300-px set without the originals' 38 patients.

    python benchmarks/two_pass.py [--arch resnet18] [--size 64] [--epochs 8] [--seed 0] [--skip-real]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import Tensor

import dermlearn as dl
from dermlearn.data.decode import load_image, presize_image
from dermlearn.data.synthetic import make_lesions
from dermlearn.inference import two_pass_predict
from dermlearn.transforms import roi_box

ARMS = ("full view", "input crop, average", "photo crop, average", "photo crop, replace",
        "photo crop (peak region), average", "photo crop (peak region), replace",
        "photo crop (finer CAM), average", "photo crop (finer CAM), replace", "mask crop (ceiling)")  # fmt: skip


def predict_arms(learn: dl.Learner, item: Tensor, source: Image.Image, mask: Tensor) -> dict[str, float]:
    """The class each arm predicts for one image (``mask``: the photo's lesion, ``(H, W)`` bool),
    and the share of the photo each crop keeps (``'<arm> area'``).
    "finer CAM": Grad-CAM of the block before the default one (twice the map's resolution)."""
    size = item.shape[-1]
    w, h = source.size
    avg_in, first, _, box_in = two_pass_predict(learn, item)
    avg_ph, _, crop_ph, box_ph = two_pass_predict(learn, item, source=source)
    avg_peak, _, crop_peak, box_peak = two_pass_predict(learn, item, source=source, region="peak")
    avg_fine, _, crop_fine, box_fine = two_pass_predict(learn, item, source=source, layer=learn.model.body[-2])
    box_mask = roi_box(mask)
    lesion = presize_image(source.crop(box_mask), size)
    probs = (first, avg_in, avg_ph, crop_ph, avg_peak, crop_peak, avg_fine, crop_fine, learn.predict(lesion)[2])
    out: dict[str, float] = {arm: int(p.argmax()) for arm, p in zip(ARMS, probs)}

    def area(b: tuple[int, int, int, int], side_w: int, side_h: int) -> float:
        return (b[2] - b[0]) * (b[3] - b[1]) / (side_w * side_h)

    boxes = (None, (box_in, size, size), (box_ph, w, h), (box_ph, w, h), (box_peak, w, h), (box_peak, w, h),
             (box_fine, w, h), (box_fine, w, h), (box_mask, w, h))
    out.update({f"{arm} area": area(*b) for arm, b in zip(ARMS, boxes) if b is not None})
    return out


def score(preds: pd.DataFrame, labels: np.ndarray, n_classes: int) -> pd.DataFrame:
    """Accuracy, balanced accuracy, change from the full view, fixed / broken images and the
    mean share of the photo the crop keeps (1.0: the whole photo)."""
    rows = []
    full = preds["full view"].to_numpy() == labels
    for arm in ARMS:
        p = torch.as_tensor(preds[arm].to_numpy().astype(np.int64))
        onehot = torch.nn.functional.one_hot(p, n_classes).float()
        t = torch.as_tensor(labels)
        right = preds[arm].to_numpy() == labels
        area = preds[f"{arm} area"] if f"{arm} area" in preds else pd.Series([1.0])
        rows.append({"arm": arm, "accuracy": float(dl.accuracy(onehot, t)), "balanced accuracy": float(dl.balanced_accuracy(onehot, t)),
                     "vs full view": float(right.mean() - full.mean()), "fixed": int((right & ~full).sum()), "broke": int((~right & full).sum()),
                     "crop area": float(area.mean()), "whole photo": float((area > 0.97).mean())})  # fmt: skip
    return pd.DataFrame(rows)


def synthetic(args) -> pd.DataFrame:
    dls = dl.synthetic_dataloaders(n=1500, size=args.size, bs=32, seed=args.seed, confounders=("fov",), confound_p=0.3)
    torch.manual_seed(args.seed)
    learn = dl.Learner(dls, dl.create_model(args.arch, len(dls.vocab)), metrics=[dl.accuracy], progress=False)
    t = time.perf_counter()
    learn.fit_one_cycle(args.epochs, args.lr)
    print(f"synthetic: trained in {time.perf_counter() - t:.0f}s, validation accuracy {learn.recorder.values[-1]['accuracy']:.3f}")
    test = make_lesions(400, 4 * args.size, seed=args.seed + 1000, confounders=("fov",), confound_p=1.0)
    rows = []
    for img, mask in zip(test.images, test.masks):
        source = Image.fromarray(img.permute(1, 2, 0).numpy())
        rows.append(predict_arms(learn, presize_image(source, args.size), source, mask))
    return score(pd.DataFrame(rows), test.labels.numpy(), len(test.classes))


def originals(args) -> pd.DataFrame:
    full = dl.DermData.pad_ufes_20(seed=args.seed)
    orig = dl.DermData.pad_ufes_20(originals=True)
    keep = ~full.items["patient_id"].isin(set(orig.items["patient_id"]))
    data = dl.DermData(full.items[keep], classes=full.classes, group_col="patient_id", seed=args.seed, name="PAD-UFES-20 without the originals' patients")
    print(data)
    dls = data.dls(bs=32, size=args.real_size, seed=args.seed, progress=False)
    torch.manual_seed(args.seed)
    learn = dl.Learner(dls, dl.create_model(args.arch, data.c), metrics=[dl.accuracy, dl.balanced_accuracy], progress=False)
    t = time.perf_counter()
    learn.fit_one_cycle(args.real_epochs, args.lr)
    v = learn.recorder.values[-1]
    print(f"originals: trained in {time.perf_counter() - t:.0f}s, validation accuracy {v['accuracy']:.3f}, balanced {v['balanced_accuracy']:.3f}")
    rows = []
    for path, mask_path in zip(orig.items["path"], orig.items["mask"]):
        item = presize_image(load_image(path, draft_size=args.real_size), args.real_size)
        source = load_image(path)
        mask = torch.from_numpy(np.asarray(load_image(mask_path).convert("L")) > 127)
        rows.append(predict_arms(learn, item, source, mask))
    labels = np.array([full.classes.index(c) for c in orig.items["label"]])
    return score(pd.DataFrame(rows), labels, data.c)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--size", type=int, default=64, help="model input side for the synthetic set")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--real-size", type=int, default=128, help="model input side for PAD-UFES-20")
    ap.add_argument("--real-epochs", type=int, default=12)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-real", action="store_true", help="only the synthetic test set")
    args = ap.parse_args()
    fmt = {"accuracy": "{:.3f}", "balanced accuracy": "{:.3f}", "vs full view": "{:+.3f}", "crop area": "{:.2f}", "whole photo": "{:.2f}"}
    tables = {f"synthetic wide views (400, drawn at {4 * args.size} px, model at {args.size} px)": synthetic(args)}
    if not args.skip_real:
        tables[f"PAD-UFES-20 originals (84 photos, model at {args.real_size} px)"] = originals(args)
    print(f"\n{args.arch}, seed {args.seed}, torch {torch.__version__}")
    for name, table in tables.items():
        print(f"\n{name}\n")
        print(table.to_string(index=False, formatters={k: v.format for k, v in fmt.items()}))


if __name__ == "__main__":
    main()
