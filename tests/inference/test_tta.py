"""Test-time augmentation."""


from __future__ import annotations

import pytest
import torch

import dermlearn as dl


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))


# ---------------------------------------------------------------------------- loader + augmentation


def test_tta_blends_augmented_and_plain(folder_data):
    dls = folder_data.dls(bs=16, size=32, progress=False)
    torch.manual_seed(0)
    learn = dl.Learner(dls, dl.create_model("simple_cnn", 3), progress=False, device="cpu")
    plain, t = learn.get_preds()
    p1, t1 = learn.tta(n=2, beta=1.0)
    torch.testing.assert_close(p1, plain)
    p, _ = learn.tta(n=3)
    assert torch.equal(t1, t) and not torch.allclose(p, plain)
    torch.testing.assert_close(p.sum(1), torch.ones(len(p)))
    assert learn._augment_valid is False
