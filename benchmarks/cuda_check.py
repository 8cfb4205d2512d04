"""Checks of the CUDA path, for a machine with a GPU: one run, a line per check, a JSON report.

What it checks (synthetic lesions, so no dataset is needed):

* ``device``: the Learner, the model and every batch land on the GPU; host batches are
  moved with ``non_blocking`` from pinned memory;
* ``amp_bf16``: ``MixedPrecision()`` picks bf16 where the GPU supports it, the logits are
  bf16, the loss falls over 3 epochs and accuracy beats chance; ``ChannelsLast`` puts the
  weights and the batches in NHWC; AdamW uses its fused kernel;
* ``amp_fp16``: ``MixedPrecision('fp16')`` trains with a GradScaler (finite loss, a scale);
* ``gpu_cache``: ``DermData.dls(cache_on_device=True)`` keeps the decoded images on the GPU;
* ``cpu_vs_gpu``: the same weights give the same logits (fp32) and Grad-CAM maps on both;
* ``export``: a model exported on the GPU and loaded on the CPU predicts the same;
* ``deterministic``: ``set_seed(0, deterministic=True)`` makes two GPU runs identical;
* ``compile``: ``Learner(compile=True)`` trains (time to the first epoch includes compiling).

A check that fails prints ``FAIL`` with its error and the script exits with status 1 after
running the others. On a machine without CUDA, ``--device cpu`` runs what does not need a GPU
(a smoke test of the script itself; its ``amp_bf16`` run is smaller there).

    python benchmarks/cuda_check.py [--out DIR] [--device cuda] [--no-compile]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import dermlearn as dl
from dermlearn.data.synthetic import make_lesions


class Probe(dl.Callback):
    """Records the device, dtype and memory format of the batches and predictions it sees."""

    order = 90

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, set] = {"x_device": set(), "pred_dtype": set(), "x_channels_last": set()}

    def after_pred(self) -> None:
        if self.learn.training:
            self.seen["x_device"].add(self.learn.xb.device.type)
            self.seen["pred_dtype"].add(str(self.learn.pred.dtype))
            self.seen["x_channels_last"].add(self.learn.xb.is_contiguous(memory_format=torch.channels_last))


def _learner(device: torch.device, n: int = 600, size: int = 64, arch: str = "resnet18", cbs=(), **kw) -> dl.Learner:
    dls = dl.synthetic_dataloaders(n=n, size=size, bs=64, seed=0)
    torch.manual_seed(0)
    return dl.Learner(dls, dl.create_model(arch, len(dls.vocab)), metrics=[dl.accuracy], device=device,
                      progress=False, cbs=list(cbs), **kw)  # fmt: skip


def check_device(device: torch.device) -> dict:
    learn = _learner(device, n=200)
    probe = Probe()
    learn.fit(1, 1e-3, cbs=[probe])
    assert learn.device.type == device.type, learn.device
    assert {p.device.type for p in learn.model.parameters()} == {device.type}
    assert probe.seen["x_device"] == {device.type}, probe.seen
    return {"learner_device": str(learn.device), "batch_devices": sorted(probe.seen["x_device"])}


def check_amp_bf16(device: torch.device) -> dict:
    # bf16 autocast on a CPU is slow (600 images at 64 px: 340 s on 2 cores), so the CPU
    # smoke run takes 200 images at 32 px (33 s); a GPU trains the full 600 at 64 px.
    n, size = (600, 64) if device.type == "cuda" else (200, 32)
    mp, probe = dl.MixedPrecision(), Probe()
    learn = _learner(device, n=n, size=size, cbs=[mp, dl.ChannelsLast(), probe])
    t = time.perf_counter()
    learn.fit_one_cycle(3, 3e-3)
    secs = time.perf_counter() - t
    losses = [r["train_loss"] for r in learn.recorder.values]
    weight = next(m.weight for m in learn.model.modules() if isinstance(m, torch.nn.Conv2d))
    fused = learn.opt.defaults.get("fused")
    out = {"dtype": str(mp.dtype), "pred_dtypes": sorted(probe.seen["pred_dtype"]), "train_loss": losses,
           "accuracy": learn.recorder.values[-1]["accuracy"], "weights_channels_last":
           weight.is_contiguous(memory_format=torch.channels_last), "batches_channels_last":
           sorted(probe.seen["x_channels_last"]), "fused_adamw": fused, "images": n, "size": size, "seconds_3_epochs": round(secs, 2)}  # fmt: skip
    expected = torch.bfloat16 if device.type != "cuda" or torch.cuda.is_bf16_supported() else torch.float16
    assert mp.dtype == expected, out
    assert probe.seen["pred_dtype"] == {str(expected)}, out
    assert out["weights_channels_last"] and probe.seen["x_channels_last"] == {True}, out
    assert losses[-1] < losses[0] and out["accuracy"] > 0.3, out  # five classes: chance is 0.2
    if device.type == "cuda":
        assert fused, out
    return out


def check_amp_fp16(device: torch.device) -> dict:
    if device.type != "cuda":
        return {"skipped": "fp16 with a GradScaler is a CUDA path"}
    mp = dl.MixedPrecision("fp16")
    learn = _learner(device, cbs=[mp, dl.ChannelsLast()])
    learn.fit(2, 1e-3)
    losses = [r["train_loss"] for r in learn.recorder.values]
    out = {"scaler": mp.scaler is not None, "scale": float(mp.scaler.get_scale()) if mp.scaler else None, "train_loss": losses}
    assert mp.scaler is not None and all(np.isfinite(losses)) and losses[-1] < losses[0], out
    return out


def check_gpu_cache(device: torch.device) -> dict:
    les = make_lesions(n=120, size=48, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (img, y) in enumerate(zip(les.images, les.labels.tolist())):
            folder = Path(tmp) / les.classes[y]
            folder.mkdir(exist_ok=True)
            Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / f"{i:04d}.png")
        data = dl.DermData.from_folder(tmp, seed=0)
        dls = data.dls(bs=32, size=48, presize=48, cache_on_device=True, device=device, cache_dir=False, progress=False)
        where = dls.train.dataset.images.device.type
        torch.manual_seed(0)
        learn = dl.Learner(dls, dl.create_model("simple_cnn", data.c), device=device, progress=False)
        learn.fit(1, 1e-3)
    out = {"cache_device": where, "train_loss": learn.recorder.values[-1]["train_loss"]}
    assert where == device.type and np.isfinite(out["train_loss"]), out
    return out


def check_cpu_vs_gpu(device: torch.device) -> dict:
    if device.type != "cuda":
        return {"skipped": "needs a GPU to compare with"}
    torch.manual_seed(0)
    model = dl.create_model("resnet18", 5).eval()
    x = torch.rand(8, 3, 96, 96)
    with torch.no_grad():
        cpu = model(x)
        gpu = model.to(device)(x.to(device)).cpu()
    cam_gpu = dl.GradCAM(model)(x.to(device)).maps.cpu()
    cam_cpu = dl.GradCAM(model.cpu())(x).maps
    corr = min(float(np.corrcoef(a.flatten(), b.flatten())[0, 1]) for a, b in zip(cam_cpu.numpy(), cam_gpu.numpy()))
    out = {"max_logit_diff": float((cpu - gpu).abs().max()), "logit_scale": float(cpu.abs().max()), "min_gradcam_corr": corr}
    assert out["max_logit_diff"] < 1e-2 * max(1.0, out["logit_scale"]) and corr > 0.99, out
    return out


def check_export(device: torch.device) -> dict:
    learn = _learner(device, n=200)
    learn.fit(1, 1e-3)
    x = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        path = learn.export(Path(tmp) / "model.pth", input_size=64)
        loaded = dl.load_learner(path, device="cpu")
        p_here, p_cpu = learn.predict(x)[2], loaded.predict(x)[2]
    out = {"max_prob_diff": float((p_here.cpu() - p_cpu).abs().max())}
    assert out["max_prob_diff"] < 1e-3, out
    return out


def check_deterministic(device: torch.device) -> dict:
    runs = []
    saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    try:
        for _ in range(2):
            dl.set_seed(0, deterministic=True)
            learn = _learner(device, n=200)
            learn.fit(1, 1e-3)
            runs.append([learn.recorder.values[-1]["train_loss"], learn.recorder.values[-1]["valid_loss"]])
    finally:  # the checks after this one (torch.compile) run with the default kernels
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[1], saved[2]
    out = {"runs": runs}
    assert runs[0] == runs[1], out
    return out


def check_compile(device: torch.device) -> dict:
    learn = _learner(device, n=400, compile=True, cbs=[dl.MixedPrecision(), dl.ChannelsLast()])
    t = time.perf_counter()
    learn.fit(2, 1e-3)
    epochs = [r["time"] for r in learn.recorder.values]
    out = {"seconds_total": round(time.perf_counter() - t, 2), "epoch_seconds": epochs,
           "train_loss": [r["train_loss"] for r in learn.recorder.values]}  # fmt: skip
    assert all(np.isfinite(out["train_loss"])), out
    return out


CHECKS = {"device": check_device, "amp_bf16": check_amp_bf16, "amp_fp16": check_amp_fp16, "gpu_cache": check_gpu_cache,
          "cpu_vs_gpu": check_cpu_vs_gpu, "export": check_export, "deterministic": check_deterministic,
          "compile": check_compile}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default=None, help="default: CUDA when present")
    ap.add_argument("--out", default=None, help="folder for cuda_check.json")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile check")
    args = ap.parse_args()
    device = torch.device(args.device) if args.device else dl.default_device()
    env = {"torch": torch.__version__, "dermlearn": dl.__version__, "device": str(device),
           "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
           "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None}  # fmt: skip
    print(" ".join(f"{k}={v}" for k, v in env.items()))
    report, failed = {"env": env}, []
    for name, check in CHECKS.items():
        if name == "compile" and args.no_compile:
            continue
        t = time.perf_counter()
        try:
            res, status = check(device), "PASS"
            if "skipped" in res:
                status = "SKIP"
        except Exception as e:  # noqa: BLE001 - every check runs; the failure is reported
            res, status = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}, "FAIL"
            failed.append(name)
        res["seconds"] = round(time.perf_counter() - t, 2)
        report[name] = {"status": status, **res}
        shown = {k: v for k, v in res.items() if k != "traceback"}
        print(f"{status} {name:<14} {json.dumps(shown, default=str)}", flush=True)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "cuda_check.json").write_text(json.dumps(report, indent=1, default=str))
    print("failed: " + ", ".join(failed) if failed else "all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
