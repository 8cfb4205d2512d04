"""The public datasets: PAD-UFES-20, DermaMNIST, CIFAR-10 (real data, skipped where absent)."""


from __future__ import annotations

import numpy as np
import pytest
import torch

import dermlearn as dl
from tests.helpers import require_data


@pytest.fixture(autouse=True)
def _shared_cache(public_data_cache):
    """Every test here reads a public dataset: one unpacked copy for the run."""


# ---------------------------------------------------------------------------- real data end to end
def test_pad_ufes_20_trains_end_to_end_at_128px():
    require_data("pad-ufes-20", "labels.csv")
    data = dl.DermData.pad_ufes_20()
    dls = data.dls(bs=32, size=128, balance="dynamic", progress=False)
    torch.manual_seed(0)
    learn = dl.Learner(dls, dl.create_model("resnet18", data.c), metrics=[dl.accuracy, dl.balanced_accuracy], progress=False,
                       train_bn=False)  # fmt: skip
    # the study's first phase, the body frozen whole (normalisation layers too: train_bn=False)
    # and the head trained; a full ResNet-18 backward at 128 px would double the test's time
    # and show nothing more about the data
    learn.freeze()
    body = {k: v.clone() for k, v in learn.model.body.state_dict().items()}
    head = [p.detach().clone() for p in learn.model.head.parameters()]
    learn.fit_one_cycle(2, 2e-3)
    assert all(torch.equal(v, learn.model.body.state_dict()[k]) for k, v in body.items())  # running statistics too
    assert not any(torch.equal(a, b) for a, b in zip(head, learn.model.head.parameters()))
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
