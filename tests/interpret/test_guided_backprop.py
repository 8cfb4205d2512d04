"""Guided Backprop against captum, DenseNet's functional ReLU, the checkerboard's cause."""


from __future__ import annotations

import pytest
import torch
import torchvision
from captum.attr import GuidedBackprop as CaptumGBP

import dermlearn as dl
from dermlearn.interpret import GuidedBackprop


@pytest.mark.parametrize("arch", ["resnet34", "resnet50"])
def test_guided_backprop_equals_captum_on_resnet(arch):
    torch.manual_seed(0)
    m = dl.create_model(arch, 5).eval()
    x = torch.randn(2, 3, 64, 64)
    ours = GuidedBackprop(m)(x, "top1")
    ref = CaptumGBP(m).attribute(x.clone(), target=ours.classes)
    assert torch.equal(ours.maps, ref)


def test_guided_backprop_guides_densenets_functional_relu():
    torch.manual_seed(0)
    tv = torchvision.models.densenet121(num_classes=4).eval()
    x = torch.randn(2, 3, 64, 64)
    ours = GuidedBackprop(tv)(x, 1).maps
    # float64 reference that guides every ReLU: the same weights with that ReLU as a module
    seq = torch.nn.Sequential(tv.features, torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), tv.classifier)
    seq = seq.double().eval()
    ref = CaptumGBP(seq).attribute(x.double(), target=1)
    torch.testing.assert_close(ours.double(), ref, atol=1e-6, rtol=1e-4)
    # captum on the raw model misses the functional ReLU: different maps
    tv = tv.float()
    missed = CaptumGBP(tv).attribute(x.clone(), target=1)
    assert not torch.allclose(missed, ours, atol=1e-4)


def test_guided_backprop_checkerboard_comes_from_the_models_strides():
    """The checkerboard in Guided Backprop maps of ResNets is the method on these models, not
    dermlearn: its maps equal captum's, carry several times white noise's share of period-2
    power, and lose it when the stem's stride-2 convolution and max-pool are removed."""
    from captum.attr import GuidedBackprop as CaptumGBP

    from dermlearn.interpret import checkerboard_share

    dls = dl.synthetic_dataloaders(n=24, size=64, n_classes=3, bs=8, seed=0)
    x = dls.apply(dls.valid.dataset.images[:4], training=False)
    torch.manual_seed(0)
    model = dl.create_model("resnet18", 3).eval()
    ours = GuidedBackprop(model)(x, "top1")
    theirs = CaptumGBP(model).attribute(x.clone().requires_grad_(True), target=ours.classes)
    torch.testing.assert_close(ours.maps, theirs, atol=1e-6, rtol=1e-4)
    noise = (64 + 64 - 1) / (64 * 64)  # white noise's share
    assert float(checkerboard_share(torch.randn(64, 64, 64)).mean()) == pytest.approx(noise, rel=0.1)
    strided = float(checkerboard_share(ours.maps).mean())
    model.body[0].stride, model.body[3] = (1, 1), torch.nn.Identity()  # stem: stride 1, no max-pool
    plain = float(checkerboard_share(GuidedBackprop(model)(x, "top1").maps).mean())
    assert strided > 2 * noise and plain < noise / 2, (strided, plain)
    with pytest.raises(ValueError, match="maps must be"):
        checkerboard_share(torch.zeros(64, 64))
