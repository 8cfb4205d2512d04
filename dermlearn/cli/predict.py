"""``dermlearn predict``: class probabilities (and heatmaps) for image files or folders."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["add_parser", "run", "output_names"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("predict", help="class probabilities for image files or folders",
                       description="Print the predicted class and the top probabilities of each image; optionally "
                       "write them to a CSV and a Grad-CAM heatmap PNG per image. Exit code 0: all predicted; "
                       "3: some files were unreadable; 1: none could be read; 2: bad arguments.")  # fmt: skip
    r.add_argument("--model", required=True, help="model file written by 'dermlearn train' or learn.export()")
    r.add_argument("images", nargs="+", help="image files or folders")
    r.add_argument("--top", type=int, default=3, help="probabilities to print per image (default: %(default)s)")
    r.add_argument("--csv", help="write image, prediction and every class probability to this CSV")
    r.add_argument("--bs", type=int, default=64, help="images per forward pass (default: %(default)s; images are decoded "
                   "by DataLoader workers, one per CPU up to 8, unless --two-pass or --heatmaps is given)")  # fmt: skip
    r.add_argument("--heatmaps", help="folder for a Grad-CAM heatmap PNG per image")
    r.add_argument("--two-pass", choices=["average", "replace"],
                   help="field of view: crop the photo, at its full resolution, to where Grad-CAM of the top class is >= half "
                   "its maximum, predict the crop, and average its probabilities with the full view's or replace them "
                   "(the CSV gets full_view and crop_box: x0 y0 x1 y1 in the upright photo's pixels)")  # fmt: skip
    r.add_argument("--crop-region", choices=["all", "peak"], default="all",
                   help="with --two-pass: box every pixel above the threshold (all, the study's rule) or only the "
                   "connected region of Grad-CAM's maximum (peak: a second hot spot does not widen the crop; "
                   "default: %(default)s)")  # fmt: skip
    r.set_defaults(func=run)


def output_names(files: Sequence[Path], suffix: str) -> list[Path]:
    """One output path per input file, relative to an output folder, that no two inputs
    share: the file's stem plus ``suffix``, under as many of its parent folders as it takes
    to tell it from the other inputs (``a/img.png``, ``b/img.png`` -> ``a/img<suffix>``,
    ``b/img<suffix>``; a lone ``img.png`` -> ``img<suffix>``).

    Raises:
        ValueError: the same file is listed twice.
    """
    parts = [Path(f).resolve().parts for f in files]
    if len(set(parts)) != len(parts):
        dup = next(f for f, p in zip(files, parts) if parts.count(p) > 1)
        raise ValueError(f"{dup} is given twice")
    depth = [1] * len(files)
    while True:
        names = [p[-d:] for p, d in zip(parts, depth)]
        clash = {n for n in names if names.count(n) > 1}
        if not clash:
            break
        depth = [d + 1 if n in clash else d for n, d in zip(names, depth)]
    return [Path(*n[:-1], Path(n[-1]).stem + suffix) for n in names]


def run(args: argparse.Namespace) -> int:
    from dermlearn.data.decode import UnreadableImage, image_item, load_image
    from dermlearn.data.sources import IMAGE_EXTENSIONS
    from dermlearn.inference import two_pass_predict
    from dermlearn.training.load_learner import load_learner

    learn = load_learner(args.model)
    size = learn.input_size or 224
    files: list[Path] = []
    for p in map(Path, args.images):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"no such image or folder: {p}")
    if not files:
        raise ValueError("no image files found in " + ", ".join(args.images))
    classes = learn.meta["classes"]
    heat = Path(args.heatmaps) if args.heatmaps else None
    if not args.two_pass and not heat:
        return _predict_batched(learn, files, classes, args)
    rows, failed = [], 0
    heat_names = output_names(files, "_gradcam.png") if heat else []
    for n, f in enumerate(files):
        try:
            item = image_item(f, size)
            # the crop of two passes and the heatmap are drawn on the photo at full resolution
            photo = load_image(f) if args.two_pass or heat else None
        except UnreadableImage as e:
            print(f"{f}: error: {e.reason}", file=sys.stderr)
            failed += 1
            continue
        extra: dict[str, str] = {}
        if args.two_pass:
            probs, first, _, box = two_pass_predict(learn, item, mode=args.two_pass, source=photo, region=args.crop_region)
            idx = int(probs.argmax())
            label, full = classes[idx], classes[int(first.argmax())]
            extra = {"full_view": full, "crop_box": " ".join(map(str, box))}
            note = f"  [two-pass {args.two_pass}: full view {full} {float(first.max()):.3f}, crop {box}]"
        else:
            label, idx, probs = learn.predict(item, check_domain=False)  # checked below, by file name
            note = ""
        _warn_domain(learn, f, learn.out_of_domain(item, photo if photo is not None else f))
        rows.append(_report(f, probs, idx, classes, args.top, note, extra))
        if heat:
            path = heat / heat_names[n]
            if path.exists():
                print(f"{f}: replacing {path} (written by an earlier run)", file=sys.stderr)
            _heatmap(learn, item, photo, str(f), path)
    _write_csv(rows, args.csv)
    return 1 if failed and not rows else (3 if failed else 0)


CHUNK = 1024
"""Files per call of predict_files in the batched path: results print as each chunk ends."""


def _predict_batched(learn, files: list[Path], classes: list[str], args: argparse.Namespace) -> int:
    """The plain path: files decoded by DataLoader workers (domain checks there too) and
    predicted in batches (:func:`dermlearn.inference.predict_files`), reported in order."""
    rows, failed = [], 0
    for start in range(0, len(files), CHUNK):
        chunk = files[start : start + CHUNK]
        res = learn.predict_files(chunk, bs=args.bs, check_domain=True, progress=len(files) >= 200 and sys.stderr.isatty())
        for f, name, probs in zip(chunk, res.files, res.probs):
            if name in res.errors:
                print(f"{f}: error: {res.errors[name]}", file=sys.stderr)
                failed += 1
                continue
            _warn_domain(learn, f, res.out_of_domain.get(name, []))
            idx = int(probs.argmax())
            rows.append(_report(f, probs, idx, classes, args.top))
    _write_csv(rows, args.csv)
    return 1 if failed and not rows else (3 if failed else 0)


def _warn_domain(learn, f: Path, reasons: list[str]) -> None:
    for reason in reasons:
        print(f"{f}: warning: out of the model's training domain ({learn.input_domain.describe()}): {reason}", file=sys.stderr)


def _report(f: Path, probs, idx: int, classes: list[str], top_k: int, note: str = "", extra: dict | None = None) -> dict:
    """Print one file's prediction and top probabilities; returns its CSV row."""
    top = probs.topk(min(top_k, len(classes)))
    print(f"{f}: {classes[idx]} {float(probs[idx]):.3f}  (" + ", ".join(f"{classes[int(i)]} {float(v):.3f}" for v, i in zip(top.values, top.indices)) + ")" + note)
    return {"image": str(f), "prediction": classes[idx], **(extra or {}), **{c: float(p) for c, p in zip(classes, probs)}}


def _write_csv(rows: list[dict], path: str | None) -> None:
    if path:
        import csv
        import io

        from dermlearn.io import atomic_write_text

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["image"])
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(buf.getvalue(), path)


def _heatmap(learn, item, photo, name: str, path: Path) -> None:
    """Grad-CAM of the predicted and the runner-up class on the photo (see
    :func:`~dermlearn.interpret.photo_heatmap.plot_photo_heatmap`), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dermlearn.interpret.photo_heatmap import plot_photo_heatmap
    from dermlearn.io import atomic_write

    classes = learn.meta["classes"]
    targets = ("top1", "runner_up") if len(classes) > 1 else ("top1",)
    ex = learn.explain(item, targets=targets, gbp=False)
    maps = []
    for t, what in zip(targets, ("predicted", "runner-up")):
        c = int(ex.gradcam[t].classes[0])
        maps.append((f"{what}: {classes[c]} {float(ex.probs[0, c]):.3f}", ex.gradcam[t].normalized()[0]))
    fig = plot_photo_heatmap(photo, maps, title=name)
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=110))
    plt.close(fig)
