"""Models are left as found, also after errors."""


from __future__ import annotations

import pytest
import torch

import dermlearn as dl
from dermlearn.interpret import GradCAM, GuidedBackprop, GuidedGradCAM, ModelGuard


def _state(m):
    return (
        [mod.training for mod in m.modules()],
        [p.requires_grad for p in m.parameters()],
        {k: v.clone() for k, v in m.state_dict().items()},
        sum(len(mod._forward_hooks) + len(mod._backward_hooks) + len(mod._forward_pre_hooks) for mod in m.modules()),
    )


def test_model_left_as_found_also_after_errors_frozen_and_in_train_mode():
    torch.manual_seed(0)
    m = dl.create_model("resnet34", 5)
    m.train()
    for p in m.body.parameters():
        p.requires_grad_(False)  # frozen body, train mode
    before = _state(m)
    x = torch.randn(2, 3, 64, 64)
    res = GradCAM(m)(x, "runner_up")
    assert res.maps.abs().sum() > 0
    GuidedBackprop(m)(x, 0)
    GuidedGradCAM(m)(x)
    for bad in ("second", 7):
        with pytest.raises(ValueError):
            GradCAM(m)(x, bad)
        with pytest.raises(ValueError):
            GuidedBackprop(m)(x, bad)
    after = _state(m)
    assert before[0] == after[0] and before[1] == after[1] and before[3] == after[3] == 0
    for k in before[2]:
        assert torch.equal(before[2][k], after[2][k]), k
    assert all(p.grad is None for p in m.parameters())


def test_guard_restores_on_exception_inside_forward():
    m = dl.create_model("simple_cnn", 3)
    m.train()

    def boom(mod, inp, out):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        with ModelGuard(m) as g:
            g.add_hook(m.body[1].register_forward_hook(boom))
            m(torch.randn(2, 3, 32, 32))
    assert m.training and all(p.requires_grad for p in m.parameters())
    assert all(len(mod._forward_hooks) == 0 for mod in m.modules())
