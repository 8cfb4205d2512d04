"""The robustness experiment: MedMNIST-C's corruptions and augmentation through the
``medmnistc`` package (where it is installed), and the experiment's own pieces with stand-in
corruptions (everywhere)."""

from __future__ import annotations

import importlib.util
import json
import random

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from dermlearn.experiments.medmnist_c import MedMNISTCPool
from dermlearn.experiments.robustness import _per_seed, drop_table, paired_table
from tests.conftest import tiny_learner
from tests.helpers import require_data

HAS_MEDMNISTC = importlib.util.find_spec("medmnistc") is not None and importlib.util.find_spec("wand") is not None
needs_medmnistc = pytest.mark.skipif(not HAS_MEDMNISTC, reason="medmnistc is not installed (pip install --no-deps medmnistc Wand)")


class Darken:
    """A stand-in corruption with medmnistc's interface: PIL image in, uint8 array out."""

    def apply(self, img: Image.Image, severity: int = -1, augmentation: bool = False) -> np.ndarray:
        return (np.asarray(img, dtype=np.float64) * (0.9 - 0.15 * severity)).astype(np.uint8)


class BlackCornerStandIn:
    def apply(self, img: Image.Image, severity: int = -1, augmentation: bool = False) -> np.ndarray:
        a = np.array(img)
        h, w = a.shape[:2]
        yy, xx = np.mgrid[:h, :w]
        a[(yy - h / 2) ** 2 + (xx - w / 2) ** 2 > (w / 2 * (1.1 - 0.1 * severity)) ** 2] = 0
        return a


def _scores() -> pd.DataFrame:
    rows = []
    for seed, (clean_a, clean_b) in enumerate([(0.70, 0.60), (0.72, 0.64), (0.68, 0.60)]):
        for arm, clean, hit in (("(a) baseline", clean_a, 0.30), ("(b) baseline + corrections at test", clean_b, 0.05)):
            rows.append({"arm": arm, "seed": seed, "corruption": "clean", "severity": 0, "acc": clean, "balanced_error": 0.5})
            for name in ("brightness_up", "black_corner", "gaussian_noise"):
                for sev in range(1, 6):
                    acc = clean - (hit if name != "gaussian_noise" else 0.1)
                    rows.append({"arm": arm, "seed": seed, "corruption": name, "severity": sev, "acc": acc, "balanced_error": 0.6})
    return pd.DataFrame(rows)


def test_drops_are_measured_from_the_baselines_clean_accuracy():
    per_seed = _per_seed(_scores(), "(a) baseline").set_index(["arm", "seed"])
    a, b = per_seed.loc[("(a) baseline", 1)], per_seed.loc[("(b) baseline + corrections at test", 1)]
    assert a["photometric/FOV drop"] == pytest.approx(0.30)  # the noise rows are outside the goal's group
    assert b["photometric/FOV ACC"] == pytest.approx(0.64 - 0.05)
    assert b["photometric/FOV drop"] == pytest.approx(0.72 - 0.59)  # from (a)'s clean 0.72, not (b)'s own 0.64
    assert b["photometric/FOV own drop"] == pytest.approx(0.05)
    assert a["corrupted ACC"] == pytest.approx(0.72 - (0.3 * 10 + 0.1 * 5) / 15)
    drops = drop_table(per_seed.reset_index(), "(a) baseline", "(b) baseline + corrections at test").set_index("seed")
    assert drops.loc[0, "ratio (b)/(a)"] == pytest.approx((0.70 - 0.55) / 0.30)
    assert drops.loc["mean", "drop (b)"] == pytest.approx(np.mean([0.70 - 0.55, 0.72 - 0.59, 0.68 - 0.55]))


def test_paired_table_is_the_t_interval_of_per_seed_differences():
    from scipy import stats

    per_seed = _per_seed(_scores(), "(a) baseline")
    row = paired_table(per_seed, [("(b) baseline + corrections at test", "(a) baseline")], ("clean ACC",)).iloc[0]
    d = np.array([0.60 - 0.70, 0.64 - 0.72, 0.60 - 0.68])
    lo, hi = stats.t.interval(0.95, 2, loc=d.mean(), scale=stats.sem(d))
    assert (row["difference"], row["low"], row["high"]) == pytest.approx((d.mean(), lo, hi), abs=1e-4)
    assert row["excludes 0"] and row["seeds"] == 3


def test_pool_swaps_the_training_images_each_epoch_and_restores_them():
    from dermlearn.data.loader import CachedItems, TensorLoader

    learn = tiny_learner()  # its loaders hold a TensorDataset: give it a store, as DermData's loaders have
    imgs = torch.zeros(40, 3, 4, 4, dtype=torch.uint8)
    items = CachedItems(imgs, torch.zeros(40, dtype=torch.int64))
    learn.dls.train = TensorLoader(items, 8, shuffle=True)
    seen: list[int] = []

    class Spy(MedMNISTCPool):
        def before_epoch(self) -> None:
            super().before_epoch()
            seen.append(int(self.learn.dls.train.dataset.store[0, 0, 0, 0]))

    pool = torch.stack([torch.full_like(imgs, v) for v in (11, 22)])
    learn.model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 2))
    learn.dls.batch_tfms = [lambda x: x.float()]
    learn.dls.valid = TensorLoader(CachedItems(imgs[:8], torch.zeros(8, dtype=torch.int64)), 8)
    learn.fit(3, 1e-3, cbs=[Spy(pool)])
    assert seen == [11, 22, 11]
    assert learn.dls.train.dataset.store is imgs  # the clean images are back after the fit
    with pytest.raises(ValueError, match="pool stores have shape"):
        learn.fit(1, 1e-3, cbs=[MedMNISTCPool(pool[:, :5])])
    assert learn.dls.train.dataset.store is imgs


def test_robustness_experiment_with_stand_in_corruptions(public_data_cache, tmp_path):
    """Every arm that needs no medmnistc at toy size: the clean and corrupted test images
    scored for each, the tables and the heat map written."""
    require_data("dermamnist.tar.gz")
    from dermlearn.experiments.robustness import main

    out = tmp_path / "rob"
    arms = ["(a) baseline", "(b) baseline + corrections at test", "(e) corrections + photometric augmentation"]
    assert main(["--quick", "--subset", "160", "--test-subset", "60", "--bs", "32", "--budget-min", "0.05", "--lr-find-iters", "6",
                 "--probe-batches", "2", "--workers", "1", "--no-cache", "--arms", *arms, "--out", str(out)],
                corruptions={"brightness_down": Darken(), "black_corner": BlackCornerStandIn()}) == 0  # fmt: skip
    scores = pd.read_csv(out / "scores.csv")
    assert list(dict.fromkeys(scores["arm"])) == arms
    assert len(scores) == 3 * (1 + 2 * 5)  # per arm: clean plus two corruptions at five severities
    training = pd.read_csv(out / "training.csv")
    assert list(training["model"]) == ["baseline", "corrections + photometric aug"]  # (b) reuses (a)'s model
    a, b = (scores[(scores["arm"] == arm) & (scores["corruption"] == "clean")]["acc"].item() for arm in arms[:2])
    assert 0 <= a <= 1 and 0 <= b <= 1
    text = (out / "results.md").read_text()
    assert "goal: (b) at most half of (a)" in text and (out / "heatmaps.png").stat().st_size > 0
    assert json.loads((out / "config.json").read_text())["corruptions"] == ["brightness_down", "black_corner"]


# ------------------------------------------------------------------ with the medmnistc package
@needs_medmnistc
def test_corrupt_is_seeded_leaves_the_callers_random_state_and_matches_the_package():
    from medmnistc.corruptions.registry import CORRUPTIONS_DS

    from dermlearn.experiments.medmnist_c import corrupt

    reg = CORRUPTIONS_DS["dermamnist"]
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (4, 3, 28, 28), dtype=np.uint8))
    np.random.seed(5)
    random.seed(5)
    before = (np.random.get_state()[1].copy(), random.getstate())
    a = corrupt(x, reg["gaussian_noise"], 3, seed=1)
    assert np.array_equal(np.random.get_state()[1], before[0]) and random.getstate() == before[1]
    assert torch.equal(a, corrupt(x, reg["gaussian_noise"], 3, seed=1)) and not torch.equal(a, corrupt(x, reg["gaussian_noise"], 3, seed=2))
    # at the images' own side the result is the package's own, image by image
    b = corrupt(x, reg["brightness_up"], 5, seed=0, work_size=28)
    ref = np.stack([reg["brightness_up"].apply(Image.fromarray(im), severity=4) for im in x.permute(0, 2, 3, 1).numpy()])
    assert torch.equal(b, torch.from_numpy(ref).permute(0, 3, 1, 2))
    # black corners survive the 224-px round trip: the corners are black, the centre is not
    c = corrupt(torch.full((1, 3, 28, 28), 200, dtype=torch.uint8), reg["black_corner"], 4, seed=0)
    assert c[0, :, 0, 0].max() == 0 and c[0, :, 14, 14].min() == 200
    with pytest.raises(ValueError, match="severity must be 1 to 5"):
        corrupt(x, reg["brightness_up"], 0, seed=0)


@needs_medmnistc
def test_wand_motion_blur_is_the_packages_motion_blur(monkeypatch):
    from medmnistc.corruptions.registry import CORRUPTIONS_DS

    from dermlearn.experiments.medmnist_c import WandMotionBlur, corrupt, load_corruptions

    package = CORRUPTIONS_DS["dermamnist"]["motion_blur"]
    ours = WandMotionBlur(package.severity_params)
    img = Image.fromarray(np.random.default_rng(2).integers(0, 256, (224, 224, 3), dtype=np.uint8))
    # the package's own code, given back the binary fromstring NumPy 2 removed (this test only)
    monkeypatch.setattr(np, "fromstring", lambda b, dtype: np.frombuffer(b, dtype), raising=False)
    for severity, augmentation in ((0, False), (4, False), (-1, True)):
        np.random.seed(11)
        ref = package.apply(img, severity=severity, augmentation=augmentation)
        np.random.seed(11)
        got = ours.apply(img, severity=severity, augmentation=augmentation)
        assert got.shape == (224, 224, 3) and got.dtype == np.uint8
        assert np.array_equal(got, ref), (severity, augmentation)  # same draws, same ImageMagick call, same pixels
    monkeypatch.undo()
    usable, unusable = load_corruptions()
    assert "motion_blur" in usable and not unusable  # every DermaMNIST corruption runs
    x = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3, 3, 28, 28), dtype=np.uint8))
    mild, strong = (corrupt(x, usable["motion_blur"], s, seed=4) for s in (1, 5))

    def detail(t):
        return (t.float().diff(dim=-1).abs().mean() + t.float().diff(dim=-2).abs().mean()).item()

    assert detail(strong) < detail(mild) < detail(x)


@needs_medmnistc
def test_corrupted_sets_do_not_depend_on_the_number_of_workers(tmp_path):
    from dermlearn.experiments.medmnist_c import corrupted_sets, load_corruptions

    usable, unusable = load_corruptions()
    assert "black_corner" in usable and all(isinstance(v, str) for v in unusable.values())
    some = {k: usable[k] for k in ("impulse_noise", "characters")}
    x = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3, 3, 28, 28), dtype=np.uint8))
    one = corrupted_sets(x, some, seed=3, workers=1, progress=False, cache_dir=tmp_path)
    two = corrupted_sets(x, some, seed=3, workers=2, progress=False)
    assert sorted(one) == sorted((n, s) for n in some for s in range(1, 6))
    assert all(torch.equal(one[k], two[k]) for k in one)
    cached = list(tmp_path.glob("medmnistc-*.pt"))
    assert len(cached) == 1 and all(torch.equal(v, corrupted_sets(x, some, seed=3, cache_dir=tmp_path)[k]) for k, v in one.items())


@needs_medmnistc
def test_summary_errors_match_the_packages_evaluator(tmp_path):
    from medmnistc.eval import Evaluator

    from dermlearn.experiments.medmnist_c import summary_errors

    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, 300)
    names = ["pixelate", "black_corner", "brightness_down"]
    ev = Evaluator("dermamnist", y[:, None].tolist(), names, str(tmp_path), "test", "multi-class")
    clean = rng.dirichlet(np.ones(7), 300)
    clean[np.arange(300), y] += 0.5
    ev.evaluate_clean(clean)
    errors = {}
    for name in names:
        probs = rng.dirichlet(np.ones(7), 1500)
        probs[np.arange(1500), np.tile(y, 5)] += rng.uniform(0, 0.6)
        ev.evaluate(probs, name)
        errors[name] = ev.corruption_errors[name]
    ev.output_log = {}  # dump_summary() sets it before calling populate_summary(), then writes a file
    ev.populate_summary()
    ours = summary_errors(errors, ev.clean_score)
    assert ours["BE"] == pytest.approx(ev.output_log["metrics"]["be"]) and ours["rBE"] == pytest.approx(ev.output_log["metrics"]["rbe"])
