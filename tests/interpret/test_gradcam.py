"""Grad-CAM against captum and classic CAM."""


from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from captum.attr import LayerAttribution, LayerGradCam

import dermlearn as dl
from dermlearn.interpret import GradCAM


def _captum_cam(model, layer, x, target):
    a = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
    return LayerAttribution.interpolate(a, tuple(x.shape[-2:]), interpolate_mode="bilinear")[:, 0]


@pytest.mark.parametrize("arch", ["resnet34", "resnet50", "densenet161"])
def test_gradcam_equals_captum(arch):
    torch.manual_seed(0)
    m = dl.create_model(arch, 5).eval()
    x = torch.randn(3, 3, 96, 96)
    for target in ("top1", "runner_up"):
        ours = GradCAM(m)(x, target)
        ref = _captum_cam(m, m.cam_layer, x, ours.classes)
        torch.testing.assert_close(ours.maps, ref, atol=1e-5, rtol=1e-5)
        assert ours.maps.shape == (3, 96, 96) and (ours.maps >= 0).all()


def test_gradcam_on_raw_torchvision_densenet_is_taken_after_the_functional_relu():
    torch.manual_seed(0)
    tv = torchvision.models.densenet121(num_classes=4).eval()
    x = torch.randn(2, 3, 64, 64)
    ours = GradCAM(tv)(x)
    # reference: an equivalent model where that ReLU is a module, with captum on it
    seq = torch.nn.Sequential(tv.features, torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), tv.classifier).eval()
    torch.testing.assert_close(seq(x), tv(x))
    ref = _captum_cam(seq, seq[1], x, ours.classes)
    torch.testing.assert_close(ours.maps, ref, atol=1e-5, rtol=1e-5)


def test_gradcam_equals_classic_cam_on_gap_linear_head():
    torch.manual_seed(0)
    m = dl.create_model("simple_cnn", 4, head="linear").eval()
    x = torch.randn(2, 3, 64, 64)
    res = GradCAM(m)(x, 2)
    with torch.no_grad():
        a = m.body(x)  # (B, K, h, w)
        w = m.head[-1].weight[2]  # (K,)
        cam = F.relu(torch.einsum("k,bkhw->bhw", w, a)) / (a.shape[2] * a.shape[3])
        cam = F.interpolate(cam[:, None], size=(64, 64), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(res.maps, cam, atol=1e-5, rtol=1e-5)
