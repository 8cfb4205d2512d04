"""Freezing, train_bn, discriminative learning rates and weight-decay groups."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import dermlearn as dl


def make(train_bn=True, **kw):
    dls = dl.synthetic_dataloaders(n=64, size=32, n_classes=3, bs=16, seed=1)
    torch.manual_seed(0)
    return dl.Learner(dls, dl.create_model("simple_cnn", 3), progress=False, train_bn=train_bn, device="cpu", **kw)


def _bn_param(m):
    return isinstance(m, nn.modules.batchnorm._BatchNorm)


def test_freeze_trains_only_head_and_bn():
    learn = make()
    learn.freeze()
    body = learn.model.body
    convs = [m for m in body.modules() if isinstance(m, nn.Conv2d)]
    bns = [m for m in body.modules() if _bn_param(m)]
    assert not any(p.requires_grad for m in convs for p in m.parameters())
    assert all(p.requires_grad for m in bns for p in m.parameters())
    assert all(p.requires_grad for p in learn.model.head.parameters())
    conv_before = [m.weight.clone() for m in convs]
    bn_before = [m.weight.clone() for m in bns]
    learn.fit(1, lr=1e-2)
    assert all(torch.equal(a, m.weight) for a, m in zip(conv_before, convs))
    assert any(not torch.equal(a, m.weight) for a, m in zip(bn_before, bns))


def test_train_bn_false_freezes_bn_weights_and_statistics():
    learn = make(train_bn=False)
    learn.freeze()
    bns = [m for m in learn.model.body.modules() if _bn_param(m)]
    stats = [(m.running_mean.clone(), m.running_var.clone(), m.weight.clone()) for m in bns]
    learn.fit(1, lr=1e-2)
    for (mu, var, w), m in zip(stats, bns):
        assert torch.equal(mu, m.running_mean) and torch.equal(var, m.running_var) and torch.equal(w, m.weight)


def test_freeze_to_and_unfreeze():
    learn = make()
    groups = learn.layer_groups()
    assert len(groups) == 3
    learn.freeze_to(1)
    nonbn = {id(p) for m in learn.model.modules() if not _bn_param(m) for p in m.parameters(recurse=False)}
    assert [all(p.requires_grad for p in g if id(p) in nonbn) for g in groups] == [False, True, True]
    assert [any(p.requires_grad for p in g if id(p) in nonbn) for g in groups] == [False, True, True]
    learn.unfreeze()
    assert all(p.requires_grad for p in learn.model.parameters())


def test_slice_learning_rates_spread_over_groups():
    learn = make()
    learn.fit(1, lr=slice(1e-5, 1e-3))
    np.testing.assert_allclose(learn.get_hyper("lr"), [1e-5, 1e-4, 1e-3], rtol=1e-12)
    # each layer group's decay and no-decay param groups share its lr
    for pg in learn.opt.param_groups:
        assert pg["lr"] == pytest.approx([1e-5, 1e-4, 1e-3][pg["layer_group"]], rel=1e-12)
    learn.fit(1, lr=slice(1e-3))
    np.testing.assert_allclose(learn.get_hyper("lr"), [1e-4, 1e-4, 1e-3], rtol=1e-12)
    with pytest.raises(ValueError, match="3 layer groups"):
        learn.set_hyper("lr", [1e-3, 1e-3])


def test_no_weight_decay_on_bn_and_bias():
    learn = make(wd=0.1)
    learn.create_opt()
    bn_or_bias = {id(p) for m in learn.model.modules() for n, p in m.named_parameters(recurse=False) if _bn_param(m) or n == "bias"}
    for pg in learn.opt.param_groups:
        ids = {id(p) for p in pg["params"]}
        if pg["weight_decay"] == 0:
            assert ids <= bn_or_bias
        else:
            assert pg["weight_decay"] == 0.1 and not ids & bn_or_bias


def test_splitter_must_cover_every_parameter():
    dls = dl.synthetic_dataloaders(n=32, size=32, n_classes=2, bs=16)
    model = dl.create_model("simple_cnn", 2)
    learn = dl.Learner(dls, model, splitter=lambda m: [list(m.head.parameters())], progress=False, device="cpu")
    with pytest.raises(ValueError, match="left out"):
        learn.create_opt()
