"""The CUDA fast path's code that runs on the CPU: bf16 autocast, channels_last, AdamW choice."""

from __future__ import annotations

import pytest
import torch

import dermlearn as dl
from tests.helpers import REPO


def _learner(cbs):
    dls = dl.synthetic_dataloaders(n=96, size=32, n_classes=3, bs=16, seed=0)
    torch.manual_seed(0)
    return dl.Learner(dls, dl.create_model("simple_cnn", 3), metrics=[dl.accuracy], progress=False, device="cpu", cbs=cbs)


def test_bf16_autocast_trains_with_float32_weights():
    seen = {}

    class Spy(dl.Callback):
        order = 20

        def after_pred(self):
            seen.setdefault("pred", self.learn.pred.dtype)
            seen.setdefault("autocast", torch.is_autocast_enabled("cpu"))

        def before_backward(self):
            seen.setdefault("autocast_in_backward", torch.is_autocast_enabled("cpu"))

    mp = dl.MixedPrecision()
    learn = _learner([mp, Spy()])
    learn.fit_one_cycle(3, 5e-3)
    assert mp.dtype == torch.bfloat16 and mp.scaler is None
    assert seen == {"pred": torch.bfloat16, "autocast": True, "autocast_in_backward": False}
    assert all(p.dtype == torch.float32 for p in learn.model.parameters())
    ref = _learner([])  # the same run in float32
    ref.fit_one_cycle(3, 5e-3)
    v, r = learn.recorder.values, ref.recorder.values
    assert v[-1]["train_loss"] < 0.5 * v[0]["train_loss"]
    assert abs(v[-1]["train_loss"] - r[-1]["train_loss"]) < 0.1 * r[-1]["train_loss"] + 0.02
    assert not torch.is_autocast_enabled("cpu")  # nothing left switched on
    with pytest.raises(ValueError, match="dtype"):
        dl.MixedPrecision("fp8")


@pytest.mark.parametrize("where", ["fit", "get_preds"])
def test_an_error_in_the_forward_pass_leaves_autocast_off(where):
    fail_at = 3 if where == "fit" else 1  # get_preds: one validation batch

    class Fails(torch.nn.Module):  # a forward that raises as a shape error would
        def __init__(self, model):
            super().__init__()
            self.model, self.calls = model, 0

        def forward(self, x):
            self.calls += 1
            if self.calls == fail_at:
                raise RuntimeError("boom in the forward pass")
            return self.model(x)

    learn = _learner([dl.MixedPrecision()])
    learn.model = Fails(learn.model)
    with pytest.raises(RuntimeError, match="boom"):
        learn.fit(1, 1e-3) if where == "fit" else learn.get_preds()
    assert not torch.is_autocast_enabled("cpu")  # fastai's MixedPrecision leaves it on here
    learn.model.calls = -100
    probs, _ = learn.get_preds()  # the learner still works, in float32 outside its loop
    assert probs.dtype == torch.float32 and torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32


def test_channels_last_gives_the_same_results():
    ref = _learner([])
    ref.fit(1, lr=3e-3)
    x, _ = next(iter(ref.dls.valid))
    x = ref.dls.apply(x, training=False)
    ref.model.eval()
    with torch.no_grad():
        out = ref.model(x)
        ref.model.to(memory_format=torch.channels_last)
        out_cl = ref.model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out_cl, out, rtol=1e-4, atol=1e-5)  # same weights, same outputs
    cl = _learner([dl.ChannelsLast()])
    cl.fit_one_cycle(3, 5e-3)
    assert cl.model.body[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    base = _learner([])
    base.fit_one_cycle(3, 5e-3)
    assert abs(cl.recorder.values[-1]["train_loss"] - base.recorder.values[-1]["train_loss"]) < 0.05


def test_adamw_uses_foreach_on_cpu():
    learn = _learner([])
    learn.create_opt()
    assert isinstance(learn.opt, torch.optim.AdamW) and not learn.opt.defaults.get("fused")


def test_compiled_training_matches_eager():
    """torch.compile on the CPU (slow to compile: one small model)."""
    from tests.helpers import tiny_learner

    eager = tiny_learner()
    eager.fit(1, lr=1e-2)
    compiled = tiny_learner(compile=True)
    compiled.fit(1, lr=1e-2)
    assert compiled._compiled is not None and type(compiled.model).__name__ == "ThreeGroupMLP"
    for a, b in zip(eager.model.parameters(), compiled.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert compiled.recorder.losses == pytest.approx(eager.recorder.losses, rel=1e-4)


def test_cuda_check_script_runs_its_cpu_part(tmp_path):
    """benchmarks/cuda_check.py is what a lent GPU runs: its CPU part must not rot meanwhile."""
    import json
    import subprocess
    import sys

    script = REPO / "benchmarks" / "cuda_check.py"
    r = subprocess.run([sys.executable, str(script), "--device", "cpu", "--no-compile", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads((tmp_path / "cuda_check.json").read_text())
    status = {k: v["status"] for k, v in report.items() if k != "env"}
    assert status == {"device": "PASS", "amp_bf16": "PASS", "amp_fp16": "SKIP", "gpu_cache": "PASS", "cpu_vs_gpu": "SKIP",
                      "export": "PASS", "deterministic": "PASS"}, status  # fmt: skip
    assert report["amp_bf16"]["pred_dtypes"] == ["torch.bfloat16"] and report["amp_bf16"]["weights_channels_last"]
