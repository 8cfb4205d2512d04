"""Grad-CAM and Guided Backprop: dermlearn vs captum, time and peak memory, same maps.

ResNet-50 (random init), 224 px, batch 1 and 8, explicit targets. Times: the two
implementations alternate in one process (median of ``--repeats`` after a warm-up), so
machine noise hits both. Peak memory: each (implementation, method, batch) runs once in its
own subprocess; the increase of that process's peak RSS (VmHWM) during the call (CPU) or
``torch.cuda.max_memory_allocated`` (CUDA). Maps are compared (max abs difference).
Target: not slower than captum (captum measured 0.55 s Grad-CAM and 1.16 s GBP at batch 8
on this kind of machine), with the same maps.

    python benchmarks/interpret.py [--repeats 11] [--size 224]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import warnings


def make(impl: str, method: str, bs: int, size: int):
    """Model, and a function computing the maps for a fixed batch."""
    import torch

    import dermlearn as dl

    warnings.filterwarnings("ignore")
    device = dl.default_device()
    torch.manual_seed(0)
    model = dl.create_model("resnet50", 10).to(device).eval()
    x = torch.randn(bs, 3, size, size, device=device)
    target = torch.arange(bs, device=device) % 10
    if impl == "dermlearn":
        from dermlearn.interpret import GradCAM, GuidedBackprop

        if method == "gradcam":
            cam = GradCAM(model)
            return lambda: cam(x, target).maps
        gbp = GuidedBackprop(model)
        return lambda: gbp(x, target).maps
    from captum.attr import GuidedBackprop, LayerAttribution, LayerGradCam

    if method == "gradcam":
        lgc = LayerGradCam(model, model.cam_layer)
        return lambda: LayerAttribution.interpolate(lgc.attribute(x, target=target, relu_attributions=True), (size, size), interpolate_mode="bilinear")[:, 0]
    cgbp = GuidedBackprop(model)
    return lambda: cgbp.attribute(x, target=target)


def _peak_rss_mb() -> float:
    """Peak RSS of this process's address space (Linux VmHWM; ru_maxrss elsewhere, which
    Linux carries over from the parent across fork and exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory_child(impl: str, method: str, bs: int, size: int) -> None:
    import torch

    f = make(impl, method, bs, size)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    rss0 = _peak_rss_mb()
    f()
    if cuda:
        torch.cuda.synchronize()
        mb = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        mb = _peak_rss_mb() - rss0
    print(json.dumps({"peak_mb": mb}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        impl, method, bs, size = args.child
        peak_memory_child(impl, method, int(bs), int(size))
        return
    import torch

    import dermlearn as dl

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    print(f"torch {torch.__version__}, device {dl.default_device()}, threads {torch.get_num_threads()}, "
          f"resnet50, {args.size}px, median of {args.repeats} interleaved calls")
    print(f"{'method':<8} {'batch':>5} {'captum s':>9} {'dermlearn s':>11} {'ratio':>6} {'captum MB':>10} {'dermlearn MB':>12} {'max |diff|':>10}")
    for method in ("gradcam", "gbp"):
        for bs in (1, 8):
            fs = {impl: make(impl, method, bs, args.size) for impl in ("captum", "dermlearn")}
            maps = {impl: f().detach().cpu() for impl, f in fs.items()}  # warm-up
            times: dict[str, list[float]] = {"captum": [], "dermlearn": []}
            for _ in range(args.repeats):
                for impl, f in fs.items():
                    t = time.perf_counter()
                    f()
                    sync()
                    times[impl].append(time.perf_counter() - t)
            mem = {}
            for impl in fs:
                out = subprocess.run([sys.executable, __file__, "--child", impl, method, str(bs), str(args.size)],
                                     check=True, capture_output=True, text=True).stdout  # fmt: skip
                mem[impl] = json.loads(out.strip().splitlines()[-1])["peak_mb"]
            tc, td = statistics.median(times["captum"]), statistics.median(times["dermlearn"])
            diff = (maps["captum"] - maps["dermlearn"]).abs().max().item()
            print(f"{method:<8} {bs:>5} {tc:>9.3f} {td:>11.3f} {td / tc:>6.2f} {mem['captum']:>10.0f} {mem['dermlearn']:>12.0f} {diff:>10.2e}")


if __name__ == "__main__":
    main()
