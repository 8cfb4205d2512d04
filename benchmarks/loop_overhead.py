"""Training-loop overhead: ``Learner.fit`` against a hand-written PyTorch loop doing the
same work (same small CNN and initial weights, same batches, same AdamW param groups, a
validation pass with loss and accuracy each epoch, device-side normalisation).

Runs alternate (plain, dermlearn, plain, dermlearn, ...) so that machine noise hits both;
prints each pair and the median ratio dermlearn / plain. Target: <= 1.03 (fastai measured
1.09-1.15x on this kind of machine).

    python benchmarks/loop_overhead.py [--repeats 7] [--epochs 2] [--size 32] [--n 1024]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

import dermlearn as dl
from dermlearn.training.optim import make_param_groups


def plain_loop(model, dls, opt, epochs: int, device) -> float:
    norm = dl.Normalize().to(device)
    for _ in range(epochs):
        model.train()
        tot = torch.zeros((), device=device)
        for x, y in dls.train:
            x, y = norm(x.to(device)), y.to(device)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            tot += loss.detach()
        model.eval()
        vloss = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        n = 0
        with torch.no_grad():
            for x, y in dls.valid:
                x, y = norm(x.to(device)), y.to(device)
                out = model(x)
                vloss += F.cross_entropy(out, y) * len(y)
                correct += (out.argmax(1) == y).sum()
                n += len(y)
        float(tot), float(vloss / n), float(correct / n)  # read back once per epoch, as the Learner does
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--bs", type=int, default=32)
    args = ap.parse_args()
    device = dl.default_device()
    dls = dl.synthetic_dataloaders(n=args.n, size=args.size, n_classes=5, bs=args.bs, seed=0)
    torch.manual_seed(0)
    init = dl.create_model("simple_cnn", 5, head="linear")
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"{len(dls.train)} train + {len(dls.valid)} valid batches of {args.bs} at {args.size}px, {args.epochs} epochs/run")

    def run_plain() -> float:
        model = copy.deepcopy(init).to(device)
        opt = torch.optim.AdamW(make_param_groups(model, [list(model.parameters())], 0.01), lr=1e-3, betas=(0.9, 0.99), eps=1e-5)
        t = time.perf_counter()
        plain_loop(model, dls, opt, args.epochs, device)
        return time.perf_counter() - t

    def run_dermlearn() -> float:
        model = copy.deepcopy(init)
        learn = dl.Learner(dls, model, loss_func=torch.nn.CrossEntropyLoss(), metrics=[dl.accuracy], splitter=lambda m: [list(m.parameters())],
                           progress=False, device=device)  # fmt: skip
        learn.create_opt()
        t = time.perf_counter()
        learn.fit(args.epochs, lr=1e-3)
        return time.perf_counter() - t

    run_plain(), run_dermlearn()  # warm-up
    ratios = []
    for i in range(args.repeats):
        tp, td = run_plain(), run_dermlearn()
        ratios.append(td / tp)
        print(f"run {i}: plain {tp:.3f}s  dermlearn {td:.3f}s  ratio {td / tp:.3f}")
    print(f"median ratio dermlearn/plain: {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}); target <= 1.03")


if __name__ == "__main__":
    main()
