"""Batch inference over image files: dermlearn's ``learn.predict_files`` and the
``dermlearn predict`` command (model file loading and printing included) against the loop a
careful PyTorch user writes (a Dataset decoding with PIL, torchvision v2 resize + centre
crop + normalisation, a DataLoader with the same workers, the model's forward in eval mode
under no_grad), same files, same model, same batch size, interleaved runs; then the cost of
each of dermlearn's corrections in the model's pipeline.

    python benchmarks/batch_inference.py --n 1000 --size 128 --arch resnet18 --repeats 3

Files: the first ``--n`` PAD-UFES-20 photos (686 are there) under $DERMLEARN_DATA (default ../shared/data),
else ``--n`` generated 640 x 480 JPEGs. Prints a table with images/s (min / median / max over
the repeats), the ratio of medians, and the ratio within each interleaved repeat.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

import dermlearn as dl
from dermlearn import transforms as T


def photo_files(n: int, tmp: Path) -> tuple[list[Path], str]:
    root = Path(os.environ.get("DERMLEARN_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "pad-ufes-20" / "images"
    files = sorted(root.glob("*.png"))[:n] if root.is_dir() else []
    if len(files) == n:
        return files, f"PAD-UFES-20 photos ({root})"
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        arr = np.clip(np.array([190, 150, 140]) + rng.normal(0, 20, (480, 640, 3)), 0, 255).astype(np.uint8)
        out.append(tmp / f"photo_{i:04d}.jpg")
        Image.fromarray(arr).save(out[-1], quality=90)
    return out, "generated 640 x 480 JPEGs"


class TorchvisionFiles(Dataset):
    """What a PyTorch user writes: PIL decode, torchvision v2 transforms per image."""

    def __init__(self, files: list[Path], size: int) -> None:
        self.files = files
        self.tf = v2.Compose([v2.PILToTensor(), v2.Resize(size, antialias=True), v2.CenterCrop(size),
                              v2.ToDtype(torch.float32, scale=True), v2.Normalize(dl.IMAGENET_MEAN, dl.IMAGENET_STD)])  # fmt: skip

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.files[i]) as img:
            return self.tf(img.convert("RGB"))


def torchvision_loop(model: torch.nn.Module, files: list[Path], size: int, bs: int, workers: int) -> torch.Tensor:
    loader = DataLoader(TorchvisionFiles(files, size), batch_size=bs, num_workers=workers)
    out = []
    model.eval()
    with torch.no_grad():
        for x in loader:
            out.append(model(x).softmax(-1))
    return torch.cat(out)


def learner(arch: str, size: int, n_classes: int, steps: list) -> dl.Learner:
    torch.manual_seed(0)
    dls = dl.DataLoaders([], None, batch_tfms=[*steps, T.Resize(size), T.Normalize()], vocab=[f"c{i}" for i in range(n_classes)])
    return dl.Learner(dls, dl.create_model(arch, n_classes), progress=False, device="cpu")


def cli_predict(model_file: Path, files: list[Path], bs: int) -> None:
    """``dermlearn predict --model FILE FILES...``, its printed lines discarded."""
    import contextlib
    import io

    from dermlearn.cli.app import main as cli

    with contextlib.redirect_stdout(io.StringIO()):
        if cli(["predict", "--model", str(model_file), *map(str, files), "--bs", str(bs)]) != 0:
            raise RuntimeError("dermlearn predict failed")


def timed(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--bs", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--corrections", nargs="*", default=["illumination", "colour", "gamma", "vignette"])
    args = p.parse_args()
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    with tempfile.TemporaryDirectory() as tmp:
        files, what = photo_files(args.n, Path(tmp))
        plain = learner(args.arch, args.size, 6, [])
        model_file = plain.export(Path(tmp) / "model.pth", input_size=args.size)
        times: dict[str, list[float]] = {"dermlearn predict_files": [], "dermlearn predict (command)": [],
                                         "torchvision + DataLoader loop": []}  # fmt: skip
        timed(lambda: plain.predict_files(files[: args.bs], bs=args.bs, num_workers=args.workers))  # warm-up
        for _ in range(args.repeats):  # interleaved
            times["dermlearn predict_files"].append(timed(lambda: plain.predict_files(files, bs=args.bs, num_workers=args.workers)))
            times["dermlearn predict (command)"].append(timed(lambda: cli_predict(model_file, files, args.bs)))
            times["torchvision + DataLoader loop"].append(timed(lambda: torchvision_loop(plain.model, files, args.size, args.bs, args.workers)))
        # the same predictions (float rounding of the two resizes aside)
        ours = plain.predict_files(files[:64], bs=args.bs, num_workers=0).probs
        theirs = torchvision_loop(plain.model, files[:64], args.size, args.bs, 0)
        agree = float((ours.argmax(-1) == theirs.argmax(-1)).float().mean())
        from dermlearn.transforms.step import cli_steps

        for name in args.corrections:
            with_step = learner(args.arch, args.size, 6, [cli_steps()[name]()])
            run = lambda learn=with_step: learn.predict_files(files, bs=args.bs, num_workers=args.workers)  # noqa: E731
            times[f"dermlearn + {name}"] = [timed(run)]  # one run each: the cost of the step, not a ratio to defend
    print(f"{len(files)} {what}; {args.arch} at {args.size} px, batch {args.bs}, {args.workers} workers, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}; top-1 agreement on 64 files {agree:.3f}")
    print("| pipeline | images/s min | median | max | vs torchvision (median) | vs torchvision, each repeat: min / median / max |")
    print("|---|---|---|---|---|---|")
    loop = times["torchvision + DataLoader loop"]
    base = statistics.median(len(files) / t for t in loop)
    for name, ts in times.items():
        rates = sorted(len(files) / t for t in ts)
        per_repeat = sorted(t_loop / t for t, t_loop in zip(ts, loop)) if len(ts) == len(loop) else []
        spread = f"{per_repeat[0]:.2f} / {statistics.median(per_repeat):.2f} / {per_repeat[-1]:.2f}" if per_repeat else "-"
        print(f"| {name} | {rates[0]:.1f} | {statistics.median(rates):.1f} | {rates[-1]:.1f} | "
              f"{statistics.median(rates) / base:.2f}x | {spread} |")  # fmt: skip


if __name__ == "__main__":
    main()
