"""Grad-CAM and Guided Backprop against captum and closed forms; state left behind;
sanity checks on a trained model; confusion-pair analysis against the study's table."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from captum.attr import GuidedBackprop as CaptumGBP
from captum.attr import LayerAttribution, LayerGradCam

import dermlearn as dl
from dermlearn.interpret import GradCAM, GuidedBackprop, GuidedGradCAM, ModelGuard, normalize_maps

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:captum.*")


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


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra = a.flatten().argsort().argsort().double()
    rb = b.flatten().argsort().argsort().double()
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    dls = dl.synthetic_dataloaders(n=600, size=64, n_classes=5, bs=32, seed=2, center_jitter=0.3,
                                   confounders=("illumination", "gamma", "cast"), confound_p=0.4)
    learn = dl.Learner(dls, dl.create_model("simple_cnn", 5, head="linear"), metrics=[dl.accuracy], progress=False, device="cpu")
    learn.fit_one_cycle(8, 5e-3)
    return learn


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


def test_explain_and_interpretation(trained, tmp_path):
    learn = trained
    ds = learn.dls.valid.dataset
    ex = learn.explain(ds.images[:4])
    assert set(ex.gradcam) == {"top1", "runner_up"} and set(ex.gbp) == {"top1", "runner_up"}
    p1 = ex.probs.gather(1, ex.gradcam["top1"].classes[:, None].cpu())
    p2 = ex.probs.gather(1, ex.gradcam["runner_up"].classes[:, None].cpu())
    assert (p1 >= p2).all() and ex.images.shape == (4, 3, 64, 64) and 0 <= ex.images.min() and ex.images.max() <= 1

    interp = dl.Interpretation.from_learner(learn)
    cm = interp.confusion_matrix()
    assert cm.sum() == len(ds) and np.trace(cm) / cm.sum() == pytest.approx(interp.accuracy)
    rep = interp.classification_report()
    np.testing.assert_allclose(rep["recall"], np.diag(cm) / cm.sum(1))
    np.testing.assert_allclose(rep["precision"], np.diag(cm) / np.maximum(cm.sum(0), 1))
    assert interp.balanced_accuracy == pytest.approx(float(dl.balanced_accuracy(interp.probs, interp.targets)), rel=1e-6)
    mc = interp.most_confused()
    assert all(n >= m for (_, _, n), (_, _, m) in zip(mc, mc[1:]))
    assert sum(n for _, _, n in mc) == cm.sum() - np.trace(cm)
    losses, idx = interp.top_losses(5)
    assert (losses[:-1] >= losses[1:]).all() and losses[0] == interp.losses.max()
    groups = ["a" if i % 2 else "b" for i in range(len(ds))]
    byg = interp.metrics_by_group(groups, name="half").set_index("half")
    odd = torch.arange(len(ds)) % 2 == 1
    assert byg.loc["a", "n"] == int(odd.sum()) and byg.loc["b", "n"] == int((~odd).sum())
    assert byg.loc["a", "accuracy"] == pytest.approx(float((interp.preds[odd] == interp.targets[odd]).float().mean()))
    fig = interp.plot_top_losses(4)
    assert "P(actual)" in fig.axes[0].get_title()
    a, b, _ = mc[0]
    path = tmp_path / "gallery.png"
    fig = interp.plot_pair_gallery(a, b, k=2, path=path)
    assert path.stat().st_size > 10_000 and len(fig.axes) % 5 == 0
    with pytest.raises(ValueError, match="unknown class"):
        interp.pair_cases("nope", b)


def test_interpretation_specificity_roc_and_calibration(trained):
    interp = dl.Interpretation.from_learner(trained)
    cm = interp.confusion_matrix().astype(np.float64)
    rep = interp.classification_report()
    assert list(rep.columns) == ["precision", "recall", "specificity", "f1", "auc", "support"]
    for c in range(5):  # specificity: of the items that are not c, the share not called c
        not_c = interp.targets != c
        assert rep["specificity"].iloc[c] == pytest.approx(float((interp.preds[not_c] != c).double().mean()))
    np.testing.assert_allclose(rep["specificity"], (cm.sum() - cm.sum(1) - cm.sum(0) + np.diag(cm)) / (cm.sum() - cm.sum(1)))
    np.testing.assert_array_equal(rep["auc"], dl.per_class_auc(interp.probs, interp.targets).numpy())
    assert interp.roc_auc == pytest.approx(float(rep["auc"].mean())) and 0.5 < interp.roc_auc <= 1
    # the operating point, against a search over every threshold, highest first (of equally
    # sensitive thresholds the highest is the most specific)
    c, want = 2, 0.9
    p, pos = interp.probs[:, c].double(), interp.targets == c
    best = (-1.0, None)
    for t in [float("inf"), *p.unique().flip(0).tolist()]:
        called = p >= t
        spec, sens = float((~called[~pos]).double().mean()), float(called[pos].double().mean())
        if spec >= want and sens > best[0]:
            best = (sens, t)
    sens, thr = interp.sensitivity_at_specificity(interp.vocab[c], want)
    assert (sens, thr) == pytest.approx(best)
    assert interp.sensitivity_at_specificity(c, 1.0)[0] <= sens <= interp.sensitivity_at_specificity(c, 0.0)[0] == 1.0
    with pytest.raises(ValueError, match=r"specificity must be in \[0, 1\]"):
        interp.sensitivity_at_specificity(c, 90)
    fig = interp.plot_roc()
    assert len(fig.axes[0].lines) == 5 + 1  # five classes and the chance diagonal
    assert fig.axes[0].get_legend().get_texts()[0].get_text() == f"{interp.vocab[0]} (AUC {rep['auc'].iloc[0]:.3f})"
    fig = interp.plot_calibration(n_bins=10)
    assert f"ECE {interp.expected_calibration_error(10):.3f}" in fig.axes[0].get_title()
    assert interp.expected_calibration_error(10) == pytest.approx(float(dl.expected_calibration_error(interp.probs, interp.targets, 10)))
    table = interp.bootstrap(n=200)
    assert list(table.index) == ["accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "expected_calibration_error"]
    assert table.loc["roc_auc", "value"] == pytest.approx(interp.roc_auc, abs=1e-6)
    assert table.loc["accuracy", "value"] == pytest.approx(interp.accuracy)
    assert (table["low"] <= table["value"]).all() and (table["value"] <= table["high"]).all()
    assert table.loc["accuracy"].tolist() == list(dl.bootstrap_ci(dl.accuracy, interp.probs, interp.targets, n=200))


def test_leading_pairs_reproduce_the_study_table(paper_tables):
    labels = paper_tables["labels"]
    cm = np.array(paper_tables["confusion_dynamic_balance"])
    pairs = dl.leading_pairs(cm, labels, min_count=5)
    got = {frozenset((a, b)): n for a, b, n in pairs}
    study = [("ulcer", "tumor", 29), ("macula", "erythema", 25), ("blister", "erythema", 17), ("erythema", "wheel", 15),
             ("crust", "ulcer", 14), ("blister", "crust", 14), ("macula", "tumor", 13), ("macula", "leuko", 10),
             ("blister", "ulcer", 7), ("tumor", "erythema", 7), ("crust", "tumor", 5)]  # fmt: skip
    for a, b, n in study:
        assert got[frozenset((a, b))] == n, (a, b)
    # the study's first eight rows are the top eight pairs (ties at 14 in either order)
    assert [n for _, _, n in pairs[:8]] == [n for _, _, n in study[:8]]
    assert {frozenset((a, b)) for a, b, _ in pairs[:8]} == {frozenset((a, b)) for a, b, _ in study[:8]}
    assert all(n >= 5 for _, _, n in pairs)
    top = dl.most_confused(cm, labels, 15)
    assert top == [("ulcer", "tumor", 18)]  # the one direction with at least 15 errors: ulcer predicted as tumor


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
