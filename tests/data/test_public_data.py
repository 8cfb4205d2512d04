"""The public datasets: PAD-UFES-20, DermaMNIST, CIFAR-10 (real data, skipped where absent)."""


from __future__ import annotations

import numpy as np
import pytest
import torch

import dermlearn as dl
from tests.helpers import require_data


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))


# ---------------------------------------------------------------------------- real data end to end
def test_pad_ufes_20_trains_end_to_end_at_128px():
    require_data("pad-ufes-20", "labels.csv")
    data = dl.DermData.pad_ufes_20()
    dls = data.dls(bs=32, size=128, balance="dynamic", progress=False)
    torch.manual_seed(0)
    learn = dl.Learner(dls, dl.create_model("resnet18", data.c), metrics=[dl.accuracy, dl.balanced_accuracy], progress=False)
    learn.fit_one_cycle(2, 2e-3)
    v = learn.recorder.values
    assert len(v) == 2 and np.isfinite(v[-1]["valid_loss"]) and 0 <= v[-1]["balanced_accuracy"] <= 1
    meta = dls.valid.dataset.meta
    assert {"patient_id", "fitzpatrick", "region", "mask"} <= set(meta[0])
    interp = dl.Interpretation.from_learner(learn)
    by_skin = interp.metrics_by_group([m["fitzpatrick"] for m in meta], name="fitzpatrick")
    assert by_skin["n"].sum() == len(meta) and "missing" in set(by_skin["fitzpatrick"].astype(str))


def test_dermamnist_official_split_and_test_loader():
    require_data("dermamnist.tar.gz")
    data = dl.DermData.dermamnist()
    assert data.counts().sum().to_dict() == {"test": 2005, "train": 7007, "valid": 1003}
    assert data.classes == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    dls = data.dls(bs=256, size=28, presize=28, progress=False)
    x, y = next(iter(dls.train))
    assert x.shape == (256, 3, 28, 28)
    te = data.test_dl(size=28, presize=28)
    assert len(te.dataset) == 2005


def test_cifar10_tables():
    require_data("cifar10.tar.gz")
    data = dl.DermData.cifar10()
    assert data.counts().sum().to_dict() == {"train": 50000, "valid": 10000} and data.c == 10
    study = dl.DermData.cifar10(test_as_valid=False)
    c = study.counts().sum().to_dict()
    assert c["test"] == 10000 and abs(c["valid"] / 50000 - 1 / 6) < 0.001
