"""The ``dermlearn`` command.

Exit codes: 0 success; 1 runtime failure; 2 bad arguments or inputs (missing path, bad
column, unknown architecture), as argparse does; 3 ``predict`` read only some of the files.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .cli_data import add_data_args, data_from_args

__all__ = ["main"]

ARCH_HELP = ("simple_cnn", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "densenet161")


def _demo(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from .datasets import synthetic_dataloaders
    from .learner import Learner
    from .lr_finder import minimum, steep, valley
    from .metrics import accuracy, balanced_accuracy, confusion_matrix, per_class_recall
    from .models import create_model
    from .plots import plot_confusion_matrix

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n = args.n if args.n is not None else (400 if args.quick else 1000)
    size = args.size if args.size is not None else (32 if args.quick else 64)
    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    dls = synthetic_dataloaders(n=n, size=size, n_classes=5, bs=32, seed=args.seed, confounders=args.confounders, confound_p=0.3)
    print(f"data: {n} synthetic lesion images, {size}x{size}, classes {dls.vocab}"
          f" ({len(dls.train.dataset)} train / {len(dls.valid.dataset)} valid)")
    model = create_model(args.arch, len(dls.vocab))
    learn = Learner(dls, model, metrics=[accuracy, balanced_accuracy], path=out, progress="table" if args.no_bar else True)
    print(f"model: {args.arch}, device {learn.device}")

    res = learn.lr_find(num_it=60, suggest_funcs=(minimum, steep, valley), show_plot=False)
    # from scratch, Smith's rule (an order of magnitude below the loss minimum) trains faster
    # than fastai's valley, which is tuned for fine-tuning pretrained weights; valley guards
    # against a minimum found among the first noisy iterations
    lr = float(max(res.suggestions.get("minimum", 3e-3), res.suggestions.get("valley", 0.0)))
    print("lr_find suggestions: " + ", ".join(f"{k}={v:.2e}" for k, v in res.suggestions.items()) + f" -> lr_max {lr:.2e}")
    fig = res.plot(used=lr)
    fig.savefig(out / "lr_find.png", dpi=100)
    plt.close(fig)

    cycles = 3
    print(f"fit_sgdr: {cycles} cycles, cycle_len 1, cycle_mult 2 ({2**cycles - 1} epochs)")
    learn.fit_sgdr(cycles, 1, lr_max=lr, cycle_mult=2)
    for name, fig in (("loss.png", learn.recorder.plot_loss()), ("lr.png", learn.recorder.plot_lr())):
        fig.savefig(out / name, dpi=100)
        plt.close(fig)

    probs, targs = learn.get_preds()
    cm = confusion_matrix(probs, targs, len(dls.vocab)).numpy()
    fig = plot_confusion_matrix(cm, dls.vocab)
    fig.savefig(out / "confusion.png", dpi=100)
    plt.close(fig)
    recall = per_class_recall(probs, targs).tolist()
    path = learn.save("demo")
    print(f"\nvalidation: accuracy {float(accuracy(probs, targs)):.3f}, balanced accuracy {float(balanced_accuracy(probs, targs)):.3f}")
    print("recall per class: " + ", ".join(f"{c} {r:.2f}" for c, r in zip(dls.vocab, recall)))
    print("confusion matrix (rows actual, columns predicted):")
    w = max(len(c) for c in dls.vocab)
    print(" " * (w + 1) + " ".join(f"{c[:5]:>5}" for c in dls.vocab))
    for c, row in zip(dls.vocab, cm):
        print(f"{c:>{w}} " + " ".join(f"{int(v):>5}" for v in row))
    print(f"\nwrote {out / 'lr_find.png'}, loss.png, lr.png, confusion.png and the model {path}")
    print(f"done in {time.perf_counter() - t0:.1f}s")
    return 0


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100)
    plt.close(fig)


# --correct NAME -> the transforms class applied (its defaults); exported with the model
CORRECTIONS = {"vignette": "CropVignette", "hair": "RemoveHair", "illumination": "CorrectIllumination",
               "colour": "ShadesOfGray", "gamma": "AutoGamma"}  # fmt: skip


def _corrections(names: list[str]) -> list:
    from . import transforms

    if len(set(names)) != len(names):
        raise ValueError(f"--correct lists a correction twice: {' '.join(names)}")
    return [getattr(transforms, CORRECTIONS[n])() for n in names]


def _learner_for(args: argparse.Namespace, data):
    """The Learner that ``train`` and ``lr-find`` use, seeded by ``--seed``: every random draw
    from here on (initial weights, dropout, sampling, augmentation) follows from it, so the
    same command gives bit-identical weights on the CPU."""
    from .learner import Learner
    from .losses import BCEWithLogitsOneHot, CrossEntropy
    from .metrics import accuracy, balanced_accuracy, roc_auc
    from .models import create_model, default_stem
    from .seed import set_seed

    set_seed(args.seed)
    tfms = _corrections(args.correct)
    dls = data.dls(bs=args.bs, size=args.size, balance=args.balance, seed=args.seed, progress=not args.no_bar, tfms=tfms,
                   skip_bad=args.skip_bad)  # fmt: skip
    weight = data.class_weights(power=args.weight_power) if args.balance == "loss" else None
    loss = BCEWithLogitsOneHot(weight=weight) if args.loss == "bce" else CrossEntropy(weight=weight)
    pretrained = args.pretrained if args.pretrained not in (None, "none") else False
    pretrained = True if pretrained == "imagenet" else pretrained
    stem = default_stem(args.arch, args.size) if args.stem == "auto" else args.stem
    if stem == "small":
        print(f"{args.arch} with the small-image stem (3x3 stride-1 convolution, no max-pool) at {args.size} px")
    model = create_model(args.arch, data.c, pretrained=pretrained, stem=stem)
    return Learner(dls, model, loss_func=loss, metrics=[accuracy, balanced_accuracy, roc_auc], path=args.out,
                   progress="table" if args.no_bar else True)  # fmt: skip


def _train(args: argparse.Namespace) -> int:
    """The study's recipe: LR range test, head with SGDR, unfreeze, discriminative LRs with
    SGDR (cycle length doubling), early stopping; export and plots."""
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    from .io import atomic_write_text
    from .recipes import study_recipe

    _check_arch(args.arch)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = data_from_args(args)
    print(data)
    learn = _learner_for(args, data)
    if args.correct:
        print("corrections (exported with the model): " + ", ".join(map(repr, learn.dls.batch_tfms[: len(args.correct)])))
    pretrained = args.pretrained not in (None, "none")
    res = study_recipe(learn, pretrained, args.lr, args.head_cycles, args.cycles, args.patience, lr_find_iters=args.num_it)
    if res.lr_find is not None:
        _save(res.lr_find.plot(used=res.lr), out / "lr_find.png")
    lr, history = res.lr, res.history
    atomic_write_text(pd.DataFrame(history).to_csv(index=False), out / "history.csv")
    _save(learn.recorder.plot_loss(), out / "loss.png")
    if args.calibrate:
        print(f"temperature scaling on the validation split: T = {learn.calibrate():.3f}")
    res = learn.validate()
    path = learn.export(out / "model.pth", extra={"data": args.data, "seed": args.seed, "lr": lr, "validation": res})
    print("validation: " + ", ".join(f"{k} {v:.4f}" for k, v in res.items()))
    print(f"wrote {path}, history.csv, loss.png" + (", lr_find.png" if args.lr is None else ""))
    return 0


EXPERIMENTS = ("photometric", "mitigation", "architectures", "cifar-speedup", "analysis", "dermamnist")


def _experiment(args: argparse.Namespace) -> int:
    import importlib

    import matplotlib

    matplotlib.use("Agg")
    module = importlib.import_module(f".experiments.{args.name.replace('-', '_')}", __package__)
    rest = list(args.args)
    if not any(a == "--out" or a.startswith("--out=") for a in rest):
        rest += ["--out", f"results/{args.name}"]
    return module.main(rest)


def _check_arch(arch: str) -> None:
    from .models import ARCHITECTURES

    if arch not in ARCHITECTURES and not arch.startswith("timm:"):
        raise ValueError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHITECTURES)} or 'timm:<name>'")


def _lr_find(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from .lr_finder import minimum, slide, steep, valley

    _check_arch(args.arch)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    learn = _learner_for(args, data_from_args(args))
    if args.freeze:
        learn.freeze()
    res = learn.lr_find(num_it=args.num_it, suggest_funcs=(valley, slide, minimum, steep), show_plot=False)
    _save(res.plot(), out / "lr_find.png")
    for k, v in res.suggestions.items():
        print(f"{k:<8} {v:.3e}")
    print(f"wrote {out / 'lr_find.png'}" + (" (the loss diverged: the sweep stopped early)" if res.stopped_early else ""))
    return 0


def _interpret(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from .export import load_learner
    from .interpret import Interpretation, write_interpretation

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    learn = load_learner(args.model)
    data = data_from_args(args)
    if data.classes != learn.meta["classes"]:
        raise ValueError(f"the data's classes {data.classes} differ from the model's {learn.meta['classes']}")
    size = args.size or learn.meta.get("input_size") or 224
    dl = data.dls(bs=args.bs, size=size, augment=False, seed=args.seed, progress=False, skip_bad=args.skip_bad).valid
    interp = Interpretation.from_learner(learn, dl=dl)
    # resample whole patients (or lesions) where the data has groups: their photos are not independent
    write_interpretation(interp, out, args.min_count, args.pairs, args.k, bootstrap=args.bootstrap, groups=data.groups("valid"))
    return 0


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


def _predict(args: argparse.Namespace) -> int:
    import csv
    import io

    from .data.decode import UnreadableImage, image_item, load_image
    from .data.sources import IMAGE_EXTENSIONS
    from .export import load_learner
    from .io import atomic_write_text
    from .transforms import two_pass_predict

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
    rows, failed = [], 0
    heat = Path(args.heatmaps) if args.heatmaps else None
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
        for reason in learn.out_of_domain(item, photo if photo is not None else f):
            print(f"{f}: warning: out of the model's training domain ({learn.input_domain.describe()}): {reason}", file=sys.stderr)
        top = probs.topk(min(args.top, len(classes)))
        print(f"{f}: {label} {float(probs[idx]):.3f}  (" + ", ".join(f"{classes[int(i)]} {float(v):.3f}" for v, i in zip(top.values, top.indices)) + ")" + note)
        rows.append({"image": str(f), "prediction": label, **extra, **{c: float(p) for c, p in zip(classes, probs)}})
        if heat:
            path = heat / heat_names[n]
            if path.exists():
                print(f"{f}: replacing {path} (written by an earlier run)", file=sys.stderr)
            _heatmap(learn, item, photo, str(f), path)
    if args.csv:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["image"])
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(buf.getvalue(), args.csv)
    return 1 if failed and not rows else (3 if failed else 0)


def _heatmap(learn, item, photo, name: str, path: Path) -> None:
    """Grad-CAM of the predicted and the runner-up class on the photo (see
    :func:`~dermlearn.interpret.photo_heatmap.plot_photo_heatmap`), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .interpret.photo_heatmap import plot_photo_heatmap
    from .io import atomic_write

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


def _add_train_args(p: argparse.ArgumentParser) -> None:
    add_data_args(p)
    g = p.add_argument_group("model and training")
    g.add_argument("--arch", default="resnet34", help="architecture: " + ", ".join(ARCH_HELP) + " or timm:<name> (default: %(default)s)")
    g.add_argument("--pretrained", default="none", help="'imagenet' (torchvision weights; needs the network or the hub cache), "
                   "a local weights file, or 'none' (default)")  # fmt: skip
    g.add_argument("--size", type=int, default=128, help="input side in pixels (default: %(default)s)")
    g.add_argument("--stem", choices=["auto", "imagenet", "small"], default="auto",
                   help="ResNet/DenseNet stem: small (3x3 stride-1 convolution, no max-pool) keeps a 4x4 feature map at "
                        "28 px where ImageNet's leaves 1x1; auto: small at 64 px and less (default: %(default)s)")  # fmt: skip
    g.add_argument("--bs", type=int, default=32, help="batch size (default: %(default)s)")
    g.add_argument("--loss", choices=["ce", "bce"], default="ce", help="cross-entropy, or the study's BCE-with-logits on one-hot targets")
    # static: the best balanced accuracy of the sampling arms on PAD-UFES-20 and DermaMNIST
    # (docs/experiments.md), and unlike 'dynamic' it does not tune the sampler on the
    # validation set whose figures this command reports
    g.add_argument("--balance", choices=["none", "static", "resample", "dynamic", "loss"], default="static",
                   help="class balancing, as DermData.dls(balance=...); static epochs grow to classes x the largest class (default: %(default)s)")  # fmt: skip
    g.add_argument("--weight-power", type=float, default=1.0, metavar="P",
                   help="with --balance loss: class weights 1/n**P; 0.5 is milder, for rare classes with few images (default: %(default)s)")  # fmt: skip
    g.add_argument("--correct", nargs="+", choices=list(CORRECTIONS), default=[], metavar="NAME",
                   help="corrections applied to every image before training and prediction, in the order given, and "
                        "exported with the model: vignette (crop a dermoscope's dark vignette), hair (remove hair, "
                        "slow: OpenCV per image), illumination (divide out uneven lighting), colour (Shades of Gray "
                        "colour constancy), gamma (automatic gamma); e.g. --correct illumination colour gamma")  # fmt: skip
    g.add_argument("--out", default="dermlearn-out", help="output folder (default: %(default)s)")
    g.add_argument("--no-bar", action="store_true", help="no progress bars (the table of epochs still prints)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dermlearn", description="Train, interpret and harden classifiers for clinical skin photos.")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    d = sub.add_parser(
        "demo",
        help="train and evaluate on synthetic lesions (no download)",
        description="Generate a seeded synthetic lesion dataset, run the LR range test, train with SGDR "
        "(cycle length doubling), evaluate, and write plots and the model to --out.",
    )
    d.add_argument("--out", default="dermlearn-demo", help="output folder for plots and the model (default: %(default)s)")
    d.add_argument("--arch", default="simple_cnn", help="architecture (default: %(default)s; e.g. resnet34)")
    d.add_argument("--n", type=int, help="number of images (default: 1000; 400 with --quick)")
    d.add_argument("--size", type=int, help="image side in pixels (default: 64; 32 with --quick)")
    d.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    d.add_argument("--confounders", nargs="*", default=["illumination", "gamma", "cast", "fov"],
                   choices=["illumination", "gamma", "cast", "fov"],
                   help="photographic confounders, each applied to 30%% of images (default: all four; "
                        "give the flag with no value for clean images)")  # fmt: skip
    d.add_argument("--quick", action="store_true", help="a smaller run (400 images at 32 px) for a smoke test; "
                                                        "--n and --size still apply")
    d.add_argument("--no-bar", action="store_true", help="no progress bars (the table of epochs still prints)")
    d.set_defaults(func=_demo)

    t = sub.add_parser("train", help="train with the study's recipe and export the model",
                       description="The study's recipe. With --pretrained: LR range test on the frozen body, the new "
                       "head with SGDR, then all layers with discriminative learning rates, SGDR (cycle length "
                       "doubling) and early stopping. From random init: LR range test, then all layers with SGDR "
                       "and early stopping. Writes model.pth (safe export), history.csv and plots to --out.")  # fmt: skip
    _add_train_args(t)
    t.add_argument("--lr", type=float, help="maximum learning rate (default: from the LR range test)")
    t.add_argument("--num-it", type=int, default=100, help="iterations of the LR range test (default: %(default)s)")
    t.add_argument("--head-cycles", type=int, default=2, help="SGDR cycles for the head (default: %(default)s)")
    t.add_argument("--cycles", type=int, default=2, help="SGDR cycles for all layers (default: %(default)s)")
    t.add_argument("--patience", type=int, default=2, help="early-stopping patience in epochs (default: %(default)s)")
    t.add_argument("--calibrate", action="store_true",
                   help="fit temperature scaling on the validation split and export it with the model (its calibration "
                        "figures on that split are then optimistic: check them on other images)")  # fmt: skip
    t.set_defaults(func=_train)

    f = sub.add_parser("lr-find", help="run the LR range test and plot loss against learning rate",
                       description="Raise the learning rate exponentially over a few batches, plot the loss, print "
                       "the suggestions (valley, slide, minimum, steep). Writes lr_find.png to --out.")  # fmt: skip
    _add_train_args(f)
    f.add_argument("--num-it", type=int, default=100, help="iterations of the sweep (default: %(default)s)")
    f.add_argument("--freeze", action="store_true", help="sweep with the body frozen (head only)")
    f.set_defaults(func=_lr_find)

    i = sub.add_parser("interpret", help="confusion matrix, leading confused pairs and Grad-CAM/GBP galleries",
                       description="Load an exported model, predict the validation split of --data (the same seed "
                       "gives the same split as training), and write the confusion matrix, per-class report, the "
                       "leading confused pairs and galleries of the top pairs to --out.")  # fmt: skip
    i.add_argument("--model", required=True, help="model file written by 'dermlearn train' or learn.export()")
    add_data_args(i)
    i.add_argument("--size", type=int, help="input side (default: the model's)")
    i.add_argument("--bs", type=int, default=64, help="batch size (default: %(default)s)")
    i.add_argument("--min-count", type=int, default=5, help="pairs with at least this many errors (default: %(default)s)")
    i.add_argument("--pairs", type=int, default=3, help="galleries for this many leading pairs (default: %(default)s)")
    i.add_argument("--k", type=int, default=3, help="cases per direction in each gallery (default: %(default)s)")
    i.add_argument("--bootstrap", type=int, default=1000,
                   help="resamples for the metrics' 95%% intervals, by group where the data has one; 0: none (default: %(default)s)")
    i.add_argument("--out", default="dermlearn-interpret", help="output folder (default: %(default)s)")
    i.set_defaults(func=_interpret)

    r = sub.add_parser("predict", help="class probabilities for image files or folders",
                       description="Print the predicted class and the top probabilities of each image; optionally "
                       "write them to a CSV and a Grad-CAM heatmap PNG per image. Exit code 0: all predicted; "
                       "3: some files were unreadable; 1: none could be read; 2: bad arguments.")  # fmt: skip
    r.add_argument("--model", required=True, help="model file written by 'dermlearn train' or learn.export()")
    r.add_argument("images", nargs="+", help="image files or folders")
    r.add_argument("--top", type=int, default=3, help="probabilities to print per image (default: %(default)s)")
    r.add_argument("--csv", help="write image, prediction and every class probability to this CSV")
    r.add_argument("--heatmaps", help="folder for a Grad-CAM heatmap PNG per image")
    r.add_argument("--two-pass", choices=["average", "replace"],
                   help="field of view: crop the photo, at its full resolution, to where Grad-CAM of the top class is >= half "
                   "its maximum, predict the crop, and average its probabilities with the full view's or replace them "
                   "(the CSV gets full_view and crop_box: x0 y0 x1 y1 in the upright photo's pixels)")  # fmt: skip
    r.add_argument("--crop-region", choices=["all", "peak"], default="all",
                   help="with --two-pass: box every pixel above the threshold (all, the study's rule) or only the "
                   "connected region of Grad-CAM's maximum (peak: a second hot spot does not widen the crop; "
                   "default: %(default)s)")  # fmt: skip
    r.set_defaults(func=_predict)

    e = sub.add_parser("experiment", help="run one of the study's experiments and write its tables",
                       description="Run an experiment on public data and write config.json (settings, seed, data, "
                       "commit, wall time), results.csv, results.md, history.csv (per epoch) and plots to --out "
                       "(default: results/NAME). photometric: PAD-UFES-20 degraded by lighting, gamma and colour "
                       "casts, corrections at test time and in training, lesion crop. mitigation: the ablation of "
                       "balancing (none/static/dynamic/loss), lesion crop, gamma, illumination and colour correction, "
                       "with the confused pairs that moved. architectures: the study's recipe on ResNet-34/50/101/152 "
                       "and DenseNet-161. cifar-speedup: baseline vs speed-up recipe, time to a target accuracy, eta. "
                       "analysis: confusion matrix, leading confused pairs and Grad-CAM/GBP galleries of a trained "
                       "(--model) or freshly trained model. dermamnist: the public DermaMNIST benchmark at 28 px, "
                       "trained on train, chosen on valid, test scored once, several seeds, beside the published rows. "
                       "Every experiment takes --quick (a few minutes on 2 CPU "
                       "cores), --seed and --out; 'dermlearn experiment NAME --help' lists its own options.")  # fmt: skip
    e.add_argument("name", choices=EXPERIMENTS, help="the experiment: " + ", ".join(EXPERIMENTS))
    e.add_argument("args", nargs=argparse.REMAINDER, help="the experiment's options, e.g. --quick --out DIR --seed 1")
    e.set_defaults(func=_experiment)
    return p


def _version() -> str:
    from . import __version__

    return f"dermlearn {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as e:
        print(f"dermlearn {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. piped into head: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
