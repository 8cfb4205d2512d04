"""Architectures: three layer groups, features equal torchvision's, weights from a file,
clear errors offline and for bad arguments. Random init only: nothing is downloaded."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torch.nn.functional as F
import torchvision

import dermlearn as dl


@pytest.mark.parametrize("arch", ["resnet34", "resnet50", "resnet101", "resnet152", "densenet161", "resnet20", "resnet56"])
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


@pytest.mark.parametrize("arch", ["resnet18", "resnet50", "densenet121"])
def test_small_stem_keeps_a_spatial_map_at_28px(arch):
    """ImageNet's stem leaves a 1x1 map at 28 px on ResNets (Grad-CAM has nothing to place)
    and cannot run a DenseNet at all; the small stem (3x3 stride 1, no max-pool) leaves 4x4
    on ResNets, 3x3 on DenseNets."""
    x = torch.rand(2, 3, 28, 28)
    big, small = dl.create_model(arch, 7).eval(), dl.create_model(arch, 7, stem="small").eval()
    if arch.startswith("resnet"):
        assert big.body(x).shape[-2:] == (1, 1)
    else:
        with pytest.raises(RuntimeError, match="Output size is too small"):
            big.body(x)
    assert small.body(x).shape[-2:] == ((4, 4) if arch.startswith("resnet") else (3, 3))
    assert small(x).shape == (2, 7) and small.stem == "small"
    first = small.body[0]
    assert (first.kernel_size, first.stride) == ((3, 3), (1, 1)) and isinstance(small.body[3], torch.nn.Identity)
    groups = small.split_params()
    assert len(groups) == 3 and sum(len(g) for g in groups) == len(list(small.parameters()))


def test_gradcam_at_28px_on_the_small_stem_localises():
    torch.manual_seed(0)
    model = dl.create_model("resnet18", 3, stem="small").eval()
    x = torch.rand(2, 3, 28, 28)
    feats = {}
    model.cam_layer.register_forward_hook(lambda m, i, o: feats.setdefault("map", o))
    cam = dl.GradCAM(model)(x, "top1")
    assert feats["map"].shape[-2:] == (4, 4) and cam.maps.shape == (2, 28, 28)
    assert (cam.maps.flatten(1).std(1) > 0).all()  # a map with structure, not a constant


def test_small_stem_takes_pretrained_weights(tmp_path):
    """ImageNet weights load except the 7x7 first convolution; a dermlearn model's own weights
    (e.g. pretrained on CIFAR-10 with the small stem) load whole, from Learner.save's file."""
    torch.manual_seed(0)
    tv = torchvision.models.resnet18()
    torch.save(tv.state_dict(), tmp_path / "imagenet.pth")
    m = dl.create_model("resnet18", 5, pretrained=tmp_path / "imagenet.pth", stem="small")
    assert m.body[0].weight.shape == (64, 3, 3, 3)
    torch.testing.assert_close(m.body[4][0].conv1.weight, tv.layer1[0].conv1.weight)
    torch.testing.assert_close(m.body[7][1].bn2.running_mean, tv.layer4[1].bn2.running_mean)
    own = dl.create_model("resnet18", 10, stem="small")
    torch.save({"model": own.state_dict()}, tmp_path / "cifar.pth")  # as Learner.save writes it
    again = dl.create_model("resnet18", 7, pretrained=tmp_path / "cifar.pth", stem="small")
    for k, v in own.body.state_dict().items():
        torch.testing.assert_close(again.body.state_dict()[k], v)
    dn = dl.create_model("densenet121", 10, stem="small")
    torch.save(dn.state_dict(), tmp_path / "dn.pth")
    dn2 = dl.create_model("densenet121", 3, pretrained=tmp_path / "dn.pth", stem="small")
    torch.testing.assert_close(dn2.body[0].weight, dn.body[0].weight)
    with pytest.raises(ValueError, match="do not fit resnet18"):  # a small-stem body into ImageNet's stem
        dl.create_model("resnet18", 7, pretrained=tmp_path / "cifar.pth")


def test_stem_choice_and_bad_stems():
    from dermlearn.models import default_stem

    assert default_stem("resnet34", 28) == "small" and default_stem("densenet161", 64) == "small"
    assert default_stem("resnet34", 96) == "imagenet" and default_stem("simple_cnn", 28) == "imagenet"
    with pytest.raises(ValueError, match="stem must be one of"):
        dl.create_model("resnet18", 3, stem="tiny")
    with pytest.raises(ValueError, match="stem='small' is for the torchvision ResNets and DenseNets"):
        dl.create_model("simple_cnn", 3, stem="small")


def test_small_stem_travels_with_the_model_file(tmp_path):
    torch.manual_seed(0)
    dls = dl.synthetic_dataloaders(n=40, size=28, n_classes=3, bs=10, seed=0)
    learn = dl.Learner(dls, dl.create_model("resnet18", 3, stem="small"), progress=False, device="cpu")
    loaded = dl.load_learner(learn.export(tmp_path / "m.pth"))
    assert loaded.model.stem == "small" and loaded.meta["stem"] == "small"
    item = dls.valid.dataset[0][0]
    torch.testing.assert_close(loaded.predict(item)[2], learn.predict(item)[2])


def test_small_resnets_follow_he_et_al():
    """ResNet-20/32/56: 6n + 2 weighted layers (n blocks of two convolutions per stage, the
    stem, the classifier), 16/32/64 channels, a 7x7 map at 28 px; a dermlearn file of the
    same model loads as pretrained weights, any other is refused."""
    for arch, n in (("resnet20", 3), ("resnet32", 5), ("resnet56", 9)):
        m = dl.create_model(arch, 10, head="linear").eval()
        convs = [c for c in m.body.modules() if isinstance(c, torch.nn.Conv2d) and c.kernel_size == (3, 3)]
        assert len(convs) + 1 == 6 * n + 2 and [convs[0].out_channels, convs[-1].out_channels] == [16, 64]
        assert m.body(torch.rand(2, 3, 28, 28)).shape == (2, 64, 7, 7)
    torch.manual_seed(0)
    src = dl.create_model("resnet20", 10)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        torch.save({"model": src.state_dict()}, Path(d) / "r20.pth")
        dst = dl.create_model("resnet20", 7, pretrained=Path(d) / "r20.pth")
        torch.testing.assert_close(dst.body.state_dict(), src.body.state_dict())
        with pytest.raises(ValueError, match="do not fit resnet32"):
            dl.create_model("resnet32", 7, pretrained=Path(d) / "r20.pth")
    with pytest.raises(ValueError, match="no published weights"):
        dl.create_model("resnet20", 7, pretrained=True)
