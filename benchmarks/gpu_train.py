"""Training throughput on a GPU: dermlearn vs a plain PyTorch loop doing the same work.

ResNet-50 and DenseNet-161, 224 px, batch 128, uint8 images already on the GPU (dermlearn's
device cache), bf16 autocast (fp16 + GradScaler where bf16 is unsupported), channels_last,
fused AdamW, ImageNet normalisation on the device. Prints images/s, peak GPU memory and the
ratio dermlearn / plain, measured in one run. For a CPU smoke test of the script itself:
``--device cpu --size 64 --bs 8 --steps 3 --archs resnet50``.

    python benchmarks/gpu_train.py [--steps 30] [--bs 128] [--size 224]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import dermlearn as dl
from dermlearn.data.loader import CachedItems, TensorLoader


def plain(model, images, labels, steps, bs, device, dtype):
    norm = dl.Normalize().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.99), eps=1e-5, fused=device.type == "cuda")
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 and device.type == "cuda" else None
    model.train()
    n = len(labels)
    for i in range(steps):
        idx = torch.arange(i * bs, (i + 1) * bs, device=device) % n
        x = norm(images.index_select(0, idx)).contiguous(memory_format=torch.channels_last)
        y = labels.index_select(0, idx)
        with torch.autocast(device.type, dtype=dtype):
            loss = F.cross_entropy(model(x), y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        opt.zero_grad(set_to_none=True)


def run(arch, args, device, which):
    torch.manual_seed(0)
    model = dl.create_model(arch, 10, head="linear").to(device).to(memory_format=torch.channels_last)
    n = args.bs * args.steps
    images = torch.randint(0, 256, (n, 3, args.size, args.size), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 10, (n,), device=device)
    dtype = torch.bfloat16 if device.type != "cuda" or torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    if which == "plain":
        plain(model, images, labels, 2, args.bs, device, dtype)  # warm-up
        t = time.perf_counter()
        plain(model, images, labels, args.steps, args.bs, device, dtype)
    else:
        dls = dl.DataLoaders(TensorLoader(CachedItems(images, labels), args.bs), None, batch_tfms=[dl.Normalize()])
        learn = dl.Learner(dls, model, progress=False, device=device, cbs=[dl.MixedPrecision(), dl.ChannelsLast()],
                           splitter=lambda m: [list(m.parameters())])  # fmt: skip
        warm = dl.DataLoaders(TensorLoader(CachedItems(images[: 2 * args.bs], labels[: 2 * args.bs]), args.bs), None, batch_tfms=[dl.Normalize()])
        learn.dls, keep = warm, learn.dls
        learn.fit(1, lr=1e-4)  # warm-up
        learn.dls = keep
        t = time.perf_counter()
        learn.fit(1, lr=1e-4)
    if device.type == "cuda":
        torch.cuda.synchronize()
    secs = time.perf_counter() - t
    mem = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return args.bs * args.steps / secs, mem


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--bs", type=int, default=128)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--archs", nargs="+", default=["resnet50", "densenet161"])
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    device = torch.device(args.device) if args.device else dl.default_device()
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {name}, {args.size}px, batch {args.bs}, {args.steps} steps, bf16/fp16 autocast + channels_last")
    print(f"{'arch':<12} {'plain img/s':>12} {'dermlearn img/s':>16} {'ratio':>6} {'plain GiB':>10} {'dermlearn GiB':>14}")
    for arch in args.archs:
        p, pm = run(arch, args, device, "plain")
        d, dm = run(arch, args, device, "dermlearn")
        print(f"{arch:<12} {p:>12.1f} {d:>16.1f} {d / p:>6.3f} {pm:>10.2f} {dm:>14.2f}")


if __name__ == "__main__":
    main()
