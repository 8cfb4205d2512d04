"""Architectures: three layer groups, features equal torchvision's, weights from a file,
clear errors offline and for bad arguments. Random init only: nothing is downloaded."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torch.nn.functional as F
import torchvision

import dermlearn as dl


@pytest.mark.parametrize("arch", ["resnet34", "resnet50", "resnet101", "resnet152", "densenet161"])
def test_architecture_groups_and_forward(arch):
    torch.manual_seed(0)
    m = dl.create_model(arch, 7).eval()
    groups = m.split_params()
    assert len(groups) == 3 and all(len(g) > 0 for g in groups)
    ids = [id(p) for g in groups for p in g]
    assert len(ids) == len(set(ids)) == len(list(m.parameters()))
    assert {id(p) for p in groups[2]} == {id(p) for p in m.head.parameters()}
    with torch.no_grad():
        out = m(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ["resnet34", "densenet161"])
def test_body_equals_torchvision_features_with_local_weights(arch, tmp_path):
    """Weights from a local file; DenseNet keeps torchvision's final ReLU before pooling."""
    torch.manual_seed(1)
    tv = torchvision.models.get_model(arch, weights=None).eval()
    path = tmp_path / f"{arch}.pth"
    torch.save(tv.state_dict(), path)
    m = dl.create_model(arch, 4, pretrained=path).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        if arch.startswith("densenet"):
            ref = F.relu(tv.features(x))
            assert isinstance(m.cam_layer, torch.nn.ReLU)
        else:
            ref = torch.nn.Sequential(*list(tv.children())[:-2])(x)
            assert m.cam_layer is m.body[-1] and isinstance(m.body[-1][0], torchvision.models.resnet.BasicBlock)
        torch.testing.assert_close(m.body(x), ref)
    assert (ref >= 0).all()


def test_pretrained_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(self, *a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(RuntimeError, match=r"could not download pretrained weights for resnet34 .*offline"):
        dl.create_model("resnet34", 3, pretrained=True)


def test_pretrained_from_hub_cache_needs_no_network(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    w = torchvision.models.ResNet18_Weights.DEFAULT
    torch.manual_seed(3)
    tv = torchvision.models.resnet18()
    (tmp_path / "checkpoints").mkdir()
    torch.save(tv.state_dict(), tmp_path / "checkpoints" / w.url.rsplit("/", 1)[-1])

    def no_network(self, *a, **k):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", no_network)
    m = dl.create_model("resnet18", 2, pretrained=w)
    torch.testing.assert_close(m.body[0].weight, tv.conv1.weight)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown architecture 'resnet35'.*resnet34"):
        dl.create_model("resnet35", 3)
    with pytest.raises(ValueError, match="n_out"):
        dl.create_model("resnet34", 0)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        dl.create_model("resnet34", 3, pretrained="missing.pth")
    with pytest.raises(ValueError, match="head kind"):
        dl.create_model("simple_cnn", 3, head="mlp")


def test_weights_of_another_architecture_are_rejected(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(ValueError, match="do not fit resnet50"):
        dl.create_model("resnet50", 3, pretrained=path)


def test_timm_models_when_installed():
    try:
        import timm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"dermlearn\[timm\]"):
            dl.create_model("timm:resnet18", 3)
        return
    m = dl.create_model("timm:resnet18", 3)
    assert len(m.split_params()) == 3
    assert m(torch.randn(2, 3, 64, 64)).shape == (2, 3)


def test_linear_head_is_gap_plus_linear():
    m = dl.create_model("simple_cnn", 3, head="linear").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = m.body(x)
        ref = m.head[-1](feats.mean((2, 3)))
        torch.testing.assert_close(m(x), ref)
