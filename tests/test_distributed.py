"""DDP on the CPU: torchrun with 2 processes and the gloo backend, no code change."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import torch

import dermlearn as dl
from dermlearn.data.loader import CachedItems, TensorLoader

SCRIPT = textwrap.dedent("""
    import json, sys, os
    import torch, dermlearn as dl
    from dermlearn.data.loader import CachedItems, TensorLoader
    out = sys.argv[1]
    ds = dl.make_lesions(n=240, size=32, n_classes=3, seed=0)
    train = TensorLoader(CachedItems(ds.images[:180], ds.labels[:180]), bs=16, shuffle=True, drop_last=True, seed=0)
    valid = TensorLoader(CachedItems(ds.images[180:], ds.labels[180:]), bs=16)
    dls = dl.DataLoaders(train, valid, batch_tfms=[dl.Normalize()], vocab=ds.classes)
    dl.set_seed(0)
    learn = dl.Learner(dls, dl.create_model("simple_cnn", 3), metrics=[dl.accuracy], device="cpu",
                       cbs=[dl.Checkpoint(os.path.join(out, "ck.pth")),
                            dl.CSVLogger(os.path.join(out, "log_rank" + os.environ["RANK"] + ".csv"))])
    learn.fit_one_cycle(4, 5e-3)
    probs, targs = learn.get_preds()
    rank = int(os.environ["RANK"])
    learn.export(os.path.join(out, "model.pth"))
    json.dump({"rank": rank, "world": torch.distributed.get_world_size(), "distributed": learn.distributed,
               "values": learn.recorder.values, "n_train_batches": len(train),
               "gathered_acc": float(dl.accuracy(probs, targs)), "n_preds": len(probs),
               "targets": targs.tolist()}, open(os.path.join(out, f"rank{rank}.json"), "w"))
""")


def test_two_process_gloo_training(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    import socket

    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port), str(script), str(tmp_path)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    res = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1)]
    assert all(x["distributed"] and x["world"] == 2 for x in res)
    assert res[0]["n_train_batches"] == res[1]["n_train_batches"] == 180 // 2 // 16  # each rank trains on its half
    v0, v1 = res[0]["values"], res[1]["values"]
    assert v0[-1]["train_loss"] < v0[0]["train_loss"]  # it learns
    for a, b in zip(v0, v1):  # losses and metrics are reduced over ranks: identical everywhere
        assert a["train_loss"] == b["train_loss"] and a["valid_loss"] == b["valid_loss"] and a["accuracy"] == b["accuracy"]
    # the metric equals the one computed from all gathered predictions (60 validation items)
    assert res[0]["n_preds"] == 60 and res[0]["targets"] == dl.make_lesions(n=240, size=32, n_classes=3, seed=0).labels[180:].tolist()
    assert abs(v0[-1]["accuracy"] - res[0]["gathered_acc"]) < 1e-6
    # only rank 0 wrote files: one checkpoint, one model, one run log (whose end-of-fit figures
    # needed the predictions of both processes); a single process reproduces the metric
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".pth") == ["ck.pth", "model.pth"]
    logs = {p.name for p in tmp_path.glob("log_rank*")}
    assert not any(n.startswith("log_rank1") for n in logs)
    assert {"log_rank0.csv", "log_rank0_batches.csv", "log_rank0_confusion_matrix.png", "log_rank0_hparams.json"} <= logs
    import pandas as pd

    assert pd.read_csv(tmp_path / "log_rank0.csv")["valid_loss"].tolist() == [v["valid_loss"] for v in v0]
    learn = dl.load_learner(tmp_path / "model.pth", device="cpu")
    ds = dl.make_lesions(n=240, size=32, n_classes=3, seed=0)
    probs, targs = learn.get_preds(dl=TensorLoader(CachedItems(ds.images[180:], ds.labels[180:]), bs=32))
    assert abs(float(dl.accuracy(probs, targs)) - v0[-1]["accuracy"]) < 1e-6
    assert torch.equal(targs, ds.labels[180:])
