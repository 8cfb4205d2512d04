"""Where the checkerboard in Guided Backprop maps comes from.

For each architecture, Guided Backprop of the predicted class on synthetic lesions
(``--size`` px, random init and after ``--epochs`` of training), computed by dermlearn and by
captum, and the share of the maps' spectral power at the period-2 frequencies
(:func:`dermlearn.interpret.checkerboard_share`; white noise: ``(2S - 1) / S**2``). Then the
same ResNet-18 with its stem made stride-free (stride-1 convolution, no max-pool): if the
pattern comes from the architecture's strides, it goes away there.

    python benchmarks/gbp_checkerboard.py --size 128
"""

from __future__ import annotations

import argparse

import torch
from captum.attr import GuidedBackprop as CaptumGBP

import dermlearn as dl
from dermlearn.interpret import checkerboard_share


def shares(model: torch.nn.Module, x: torch.Tensor) -> tuple[float, float, float]:
    """(dermlearn's share, captum's share, max |dermlearn - captum| / max |captum|)."""
    ours = dl.GuidedBackprop(model)(x, "top1")
    theirs = CaptumGBP(model).attribute(x.clone().requires_grad_(True), target=ours.classes)
    diff = float((ours.maps - theirs).abs().max() / theirs.abs().max().clamp_min(1e-12))
    return float(checkerboard_share(ours.maps).mean()), float(checkerboard_share(theirs).mean()), diff


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--n", type=int, default=16, help="images explained")
    args = p.parse_args()
    dls = dl.synthetic_dataloaders(n=400, size=args.size, n_classes=5, bs=32, seed=0)
    x = dls.apply(dls.valid.dataset.images[: args.n], training=False)
    noise = (2 * args.size - 1) / args.size**2
    print(f"period-2 share of spectral power, {args.n} images at {args.size} px (white noise: {noise:.4f})")
    print(f"{'model':<34} {'weights':<9} {'dermlearn':>10} {'captum':>8} {'rel. diff':>10} {'/ noise':>8}")
    for arch in ("resnet18", "densenet121", "simple_cnn", "resnet18 stride-free stem"):
        torch.manual_seed(0)
        model = dl.create_model(arch.split()[0], 5)
        if "stride-free" in arch:
            model.body[0].stride, model.body[3] = (1, 1), torch.nn.Identity()
        for weights in ("random", "trained"):
            if weights == "trained":
                learn = dl.Learner(dls, model, progress=False, device="cpu")
                learn.fit_one_cycle(args.epochs, 3e-3)
            ours, theirs, diff = shares(model.eval(), x)
            print(f"{arch:<34} {weights:<9} {ours:>10.4f} {theirs:>8.4f} {diff:>10.1e} {ours / noise:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
