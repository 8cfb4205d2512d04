"""Attribution maps: batches, memory, normalisation, sanity checks."""


from __future__ import annotations

import gc

import numpy as np
import torch
import torch.nn.functional as F

import dermlearn as dl
from dermlearn.interpret import GradCAM, GuidedBackprop, GuidedGradCAM, normalize_maps


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra = a.flatten().argsort().argsort().double()
    rb = b.flatten().argsort().argsort().double()
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def test_batch_equals_per_image_and_runner_up_differs():
    torch.manual_seed(0)
    m = dl.create_model("resnet34", 5).eval()
    x = torch.randn(3, 3, 64, 64)
    cam, gbp = GradCAM(m), GuidedBackprop(m)
    batch = cam(x, "top1")
    single = torch.cat([cam(x[i : i + 1], "top1").maps for i in range(3)])
    torch.testing.assert_close(batch.maps, single, atol=1e-5, rtol=1e-5)
    gb = torch.cat([gbp(x[i : i + 1], "runner_up").maps for i in range(3)])
    torch.testing.assert_close(gbp(x, "runner_up").maps, gb, atol=1e-6, rtol=1e-5)
    ru = cam(x, "runner_up")
    assert not torch.equal(ru.classes, batch.classes)
    assert not torch.allclose(ru.maps, batch.maps)
    gg = GuidedGradCAM(m)(x, "top1")
    torch.testing.assert_close(gg.maps, gbp(x, batch.classes).maps * batch.maps[:, None])


def test_low_memory_mode_gives_the_same_maps():
    torch.manual_seed(0)
    m = dl.create_model("resnet34", 5).eval()
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(GradCAM(m, low_memory=True)(x).maps, GradCAM(m)(x).maps)
    assert torch.is_grad_enabled()


def test_memory_is_flat_over_100_calls():
    torch.manual_seed(0)
    m = dl.create_model("simple_cnn", 3).eval()
    x = torch.randn(2, 3, 32, 32)
    cam, gbp = GradCAM(m), GuidedBackprop(m)

    def n_tensors():
        gc.collect()
        return sum(1 for o in gc.get_objects() if type(o) in (torch.Tensor, torch.nn.Parameter))

    cam(x), gbp(x)
    start = n_tensors()
    for _ in range(100):
        cam(x, "runner_up")
        gbp(x, "top1")
    assert n_tensors() == start


def test_normalize_maps_shared_and_per_image():
    a = torch.tensor([[[1.0, 2.0]], [[0.0, 0.0]]])
    b = torch.tensor([[[4.0, 1.0]], [[3.0, 0.0]]])
    na, nb = normalize_maps(a, b)
    assert na.amax() == 1 and torch.equal(na[1], a[1])
    sa, sb = normalize_maps(a, b, shared=True)
    torch.testing.assert_close(sa[0], a[0] / 4)
    torch.testing.assert_close(sb[0], b[0] / 4)


def test_sanity_checks_on_a_trained_model(trained, capsys):
    """Adebayo et al. 2018: maps must change when the head is re-initialised; pointing game."""
    learn = trained
    assert learn.recorder.values[-1]["accuracy"] > 0.7
    ds = learn.dls.valid.dataset
    items = ds.images[:60]
    x = learn.dls.apply(items, training=False)
    cam = GradCAM(learn.model)(x, "top1")
    gbp = GuidedBackprop(learn.model)(x, "top1")
    # pointing game (Zhang et al. 2016): the peak of the map for the true class lies on the
    # lesion (mask dilated by 2 px). Taken on the 8x8 layer body[-2]; the default 4x4 layer
    # at 64 px is printed as well (it is coarser: its peaks land on the lesion less often).
    masks = F.max_pool2d(ds.masks[:60].float()[:, None], 5, 1, 2)[:, 0] > 0
    labels = ds.labels[:60]

    def pointing(layer):
        maps = GradCAM(learn.model, layer)(x, labels).maps
        return masks.flatten(1)[torch.arange(60), maps.flatten(1).argmax(1)].float().mean().item()

    hits, hits_last = pointing(learn.model.body[-2]), pointing(None)
    centre = masks[:, 32, 32].float().mean().item()  # baseline: always point at the centre
    assert hits >= 0.75 and hits > centre
    # model-parameter randomisation of the head
    state = {k: v.clone() for k, v in learn.model.state_dict().items()}
    try:
        torch.manual_seed(123)
        learn.model.head[-1].reset_parameters()
        cam_r = GradCAM(learn.model)(x, cam.classes)
        gbp_r = GuidedBackprop(learn.model)(x, cam.classes)
    finally:
        learn.model.load_state_dict(state)
    rho_cam = float(np.mean([_spearman(cam.maps[i], cam_r.maps[i]) for i in range(60)]))
    rho_gbp = float(np.mean([_spearman(gbp.maps[i].abs().sum(0), gbp_r.maps[i].abs().sum(0)) for i in range(60)]))
    with capsys.disabled():
        print(f"\n[sanity] pointing game {hits:.2f} at 8x8, {hits_last:.2f} at the default 4x4 layer (centre baseline "
              f"{centre:.2f}); Spearman after head "
              f"re-init: Grad-CAM {rho_cam:.3f}, Guided Backprop {rho_gbp:.3f}")
    assert rho_cam < 0.4
    assert rho_gbp > 0.7  # Guided Backprop barely depends on the head (Adebayo et al.): the maps stay alike
