"""What ``train`` and ``lr-find`` share: the model and training options, the corrections
they apply, and the seeded Learner they build."""

from __future__ import annotations

import argparse

from .data_args import add_data_args

__all__ = ["add_train_args", "check_arch", "corrections", "learner_for"]

ARCH_HELP = ("simple_cnn", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "densenet161")


def corrections(names: list[str]) -> list:
    """The pipeline steps ``--correct`` names (each a :class:`~dermlearn.transforms.Step` with a
    ``cli_name``), with their defaults, in the order given.

    Raises:
        ValueError: a name twice, or a name no step has.
    """
    from dermlearn.transforms.step import cli_steps

    if len(set(names)) != len(names):
        raise ValueError(f"--correct lists a correction twice: {' '.join(names)}")
    steps = cli_steps()
    unknown = [n for n in names if n not in steps]
    if unknown:
        raise ValueError(f"--correct: no correction is called {', '.join(map(repr, unknown))}; "
                         f"the corrections are {', '.join(steps)} ('--correct list' describes them)")  # fmt: skip
    return [steps[n]() for n in names]


class _ListCorrections(argparse.Action):
    """``--correct list``: print each correction's name and summary, and exit (as --help does)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if values == ["list"]:
            from dermlearn.transforms.step import cli_steps

            for name, cls in cli_steps().items():
                print(f"{name:<14} {cls.__name__}: {(cls.__doc__ or '').strip().splitlines()[0]}")
            parser.exit()
        setattr(namespace, self.dest, values)


def learner_for(args: argparse.Namespace, data):
    """The Learner that ``train`` and ``lr-find`` use, seeded by ``--seed``: every random draw
    from here on (initial weights, dropout, sampling, augmentation) follows from it, so the
    same command gives bit-identical weights on the CPU."""
    from dermlearn.evaluation.metrics import accuracy, balanced_accuracy, roc_auc
    from dermlearn.losses import BCEWithLogitsOneHot, CrossEntropy
    from dermlearn.models import create_model, default_stem
    from dermlearn.seed import set_seed
    from dermlearn.training.learner import Learner

    set_seed(args.seed)
    tfms = corrections(args.correct)
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


def check_arch(arch: str) -> None:
    from dermlearn.models import ARCHITECTURES

    if arch not in ARCHITECTURES and not arch.startswith("timm:"):
        raise ValueError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHITECTURES)} or 'timm:<name>'")


def add_train_args(p: argparse.ArgumentParser) -> None:
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
    g.add_argument("--correct", nargs="+", action=_ListCorrections, default=[], metavar="NAME",
                   help="corrections applied to every image before training and prediction, in the order given, and "
                        "exported with the model, e.g. --correct illumination colour gamma; '--correct list' lists "
                        "them (each a dermlearn.transforms step with a command-line name)")  # fmt: skip
    g.add_argument("--config", metavar="FILE",
                   help="read the options from a TOML (or YAML) file, e.g. the run.toml an earlier run wrote; "
                        "options on the command line win")  # fmt: skip
    g.add_argument("--out", default="dermlearn-out", help="output folder (default: %(default)s)")
    g.add_argument("--no-bar", action="store_true", help="no progress bars (the table of epochs still prints)")
