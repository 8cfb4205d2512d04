"""Data: robust decoding, sources, honest splits, in-memory loaders, batched augmentation,
class balancing, TTA; real PAD-UFES-20 / DermaMNIST / CIFAR-10 where present."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

import dermlearn as dl
from dermlearn.data import (
    BatchAugment,
    ClassWeightedSampler,
    UnreadableImage,
    load_image,
    oversample_indices,
    recall_weights,
)
from dermlearn.data.sampling import inverse_frequency_weights

from .conftest import require_data


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))


def _png(path, arr, mode=None):
    Image.fromarray(arr, mode).save(path)
    return path


def synthetic_folder(root, n=60, size=32, seed=0, n_classes=3):
    ds = dl.make_lesions(n=n, size=size, n_classes=n_classes, seed=seed)
    for i in range(n):
        d = root / ds.classes[int(ds.labels[i])]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(ds.images[i].permute(1, 2, 0).numpy()).save(d / f"{i:04d}.png")
    return ds


# ---------------------------------------------------------------------------- decoding
def test_colour_modes_16bit_and_exif(tmp_path):
    gray = load_image(_png(tmp_path / "g.png", np.full((10, 12), 77, np.uint8)))
    assert gray.mode == "RGB" and np.asarray(gray)[0, 0].tolist() == [77, 77, 77]
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    assert np.asarray(load_image(_png(tmp_path / "a.png", rgba, "RGBA")))[0, 0].tolist() == [200, 0, 0]
    sixteen = np.array([[0, 32768, 65535]], dtype=np.uint16).repeat(4, 0)
    Image.fromarray(sixteen).save(tmp_path / "s.png")
    assert Image.open(tmp_path / "s.png").mode.startswith("I")
    assert np.asarray(load_image(tmp_path / "s.png"))[0, :, 0].tolist() == [0, 128, 255]
    # EXIF orientation 6 (rotate 90 degrees clockwise to display): 40x20 stored -> 20x40 shown
    img = Image.new("RGB", (40, 20), (10, 20, 30))
    img.paste((250, 0, 0), (0, 0, 5, 5))  # red square top-left of the stored image
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(tmp_path / "r.jpg", exif=exif, quality=95)
    up = load_image(tmp_path / "r.jpg")
    assert up.size == (20, 40)
    a = np.asarray(up)
    assert a[2, -3, 0] > 200 and a[2, 2, 0] < 100  # the red corner moved to the top right


def test_unreadable_files_are_reported_by_path(tmp_path):
    good = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good, "JPEG")
    (tmp_path / "trunc.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    for name, reason in [("trunc.jpg", "truncated"), ("zero.png", "empty"), ("text.png", "not an image"), ("corrupt.png", "")]:
        with pytest.raises(UnreadableImage, match=name) as e:
            load_image(tmp_path / name)
        assert reason in e.value.reason


def test_dermdata_lists_all_bad_files_or_skips_them(tmp_path):
    synthetic_folder(tmp_path / "imgs", n=30)
    (tmp_path / "imgs" / "macula" / "zz_zero.png").write_bytes(b"")
    (tmp_path / "imgs" / "tumor" / "zz_text.jpg").write_text("hello")
    data = dl.DermData.from_folder(tmp_path / "imgs")
    with pytest.raises(ValueError, match="2 unreadable") as e:
        data.dls(bs=8, size=32, progress=False)
    assert "zz_zero.png" in str(e.value) and "zz_text.jpg" in str(e.value) and "empty" in str(e.value)
    with pytest.warns(UserWarning, match="dropped 2 unreadable"):
        dls = data.dls(bs=8, size=32, skip_bad=True, progress=False)
    n = len(dls.train.dataset) + len(dls.valid.dataset)
    assert n == 30
    for _ in range(2):  # whole epochs run without a decode error
        for x, _ in dls.train:
            assert x.dtype == torch.uint8


# ---------------------------------------------------------------------------- sources
def test_csv_label_column_one_hot_and_errors(tmp_path):
    ds = synthetic_folder(tmp_path / "imgs", n=24)
    files = sorted((tmp_path / "imgs").rglob("*.png"))
    rel = [str(f.relative_to(tmp_path)) for f in files]
    labels = [f.parent.name for f in files]
    pd.DataFrame({"image": rel, "dx": labels, "patient": [i // 2 for i in range(24)]}).to_csv(tmp_path / "a.csv", index=False)
    data = dl.DermData.from_csv(tmp_path / "a.csv", label_col="dx", group_col="patient")
    assert data.classes == sorted(set(labels)) and "patient" in data.items.columns
    with pytest.raises(ValueError, match=r"missing column\(s\) \['diagnosis'\].*'dx'"):
        dl.DermData.from_csv(tmp_path / "a.csv", label_col="diagnosis")
    with pytest.raises(ValueError, match=r"row \d+ .* has label 'ulcer', not one of the classes"):
        dl.DermData.from_csv(tmp_path / "a.csv", label_col="dx", classes=["macula", "tumor"])
    # ISIC style: one 0/1 column per class, ids without extension
    onehot = pd.DataFrame({"image": [r[:-4] for r in rel]})
    for c in ds.classes:
        onehot[c] = [1.0 if lab == c else 0.0 for lab in labels]
    onehot.to_csv(tmp_path / "gt.csv", index=False)
    d2 = dl.DermData.from_csv(tmp_path / "gt.csv", label_col=None, label_cols=ds.classes, suffix=".png")
    assert d2.classes == ds.classes and [d2.classes[i] for i in d2.y] == labels
    onehot.loc[3, ds.classes] = 1.0
    onehot.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match=r"row 5 .* 3 positive classes"):
        dl.DermData.from_csv(tmp_path / "bad.csv", label_col=None, label_cols=ds.classes, suffix=".png")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        dl.DermData.from_csv(tmp_path / "nope.csv")


def test_explicit_validation_set_is_honoured(tmp_path):
    synthetic_folder(tmp_path / "imgs", n=24)
    table = dl.data.folder_table(tmp_path / "imgs")
    table["is_valid"] = [i % 4 == 0 for i in range(len(table))]
    d = dl.DermData(table, valid="is_valid")
    assert d.indices("valid").tolist() == [i for i in range(24) if i % 4 == 0]
    d = dl.DermData(table, valid=[1, 2, 3])
    assert d.indices("valid").tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="is_val"):
        dl.DermData(table, valid="is_val")


# ---------------------------------------------------------------------------- splits
def test_grouped_split_on_pad_ufes_20():
    require_data("pad-ufes-20", "labels.csv")
    data = dl.DermData.pad_ufes_20()
    tr, va = data.indices("train"), data.indices("valid")
    pats = data.items["patient_id"]
    assert not set(pats.iloc[tr]) & set(pats.iloc[va])
    whole = np.bincount(data.y, minlength=data.c) / len(data.y)
    valid = np.bincount(data.y[va], minlength=data.c) / len(va)
    assert np.abs(valid - whole).max() < 0.03
    assert abs(len(va) / len(data.y) - 1 / 6) < 0.02
    again = dl.DermData.pad_ufes_20()
    assert np.array_equal(again.indices("valid"), va)
    other = dl.DermData.pad_ufes_20(seed=1)
    assert not np.array_equal(other.indices("valid"), va)
    # patients with several photos reach the validation set in their share of the data (38 %)
    assert data.groups("valid") == pats.iloc[va].tolist()
    several = pats.map(pats.value_counts()).to_numpy() > 1
    assert abs(several[va].mean() - several.mean()) < 0.06, (several[va].mean(), several.mean())


def test_grouped_split_sends_groups_of_every_size_to_both_sides():
    # 60 groups of one item and 20 groups of six, two classes: a side that took the large
    # groups first would leave validation with single items only
    sizes = [1] * 60 + [6] * 20
    groups = np.repeat(np.arange(len(sizes)), sizes)
    labels = np.repeat(np.arange(len(sizes)) % 2, sizes)
    tr, va = dl.grouped_split(labels, groups, valid_pct=0.25, seed=0)
    assert not set(groups[tr]) & set(groups[va]) and len(tr) + len(va) == len(labels)
    big = np.repeat(np.array(sizes) == 6, sizes)
    # one group of six is 13 % of the validation side: that is the granularity (the old rule: 0 %)
    assert abs(big[va].mean() - big.mean()) < 0.15 and abs(len(va) / len(labels) - 0.25) < 0.03
    assert abs(labels[va].mean() - labels.mean()) < 0.05  # and the classes keep their shares


def test_stratified_split_keeps_class_shares():
    y = np.repeat(np.arange(4), [60, 30, 12, 6])
    tr, va = dl.stratified_split(y, 1 / 6, seed=0)
    assert np.bincount(y[va]).tolist() == [10, 5, 2, 1]
    assert np.array_equal(va, dl.stratified_split(y, 1 / 6, seed=0)[1])
    with pytest.raises(ValueError, match="valid_pct"):
        dl.stratified_split(y, 0)
    with pytest.raises(ValueError, match="missing values"):
        dl.grouped_split([0, 1, 0], ["a", None, "b"])


# ---------------------------------------------------------------------------- loader + augmentation
@pytest.fixture(scope="module")
def folder_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("folder")
    synthetic_folder(root, n=90, size=40, n_classes=3)
    return dl.DermData.from_folder(root)


def test_loaders_are_reproducible_and_cached(folder_data):
    a = folder_data.dls(bs=16, size=32, seed=5, progress=False)
    b = folder_data.dls(bs=16, size=32, seed=5, progress=False)
    for (xa, ya), (xb, yb) in zip(a.train, b.train):
        assert torch.equal(ya, yb)
        torch.testing.assert_close(a.apply(xa, True), b.apply(xb, True))
    assert len(a.train) == len(a.train.dataset) // 16
    e1 = [y for _, y in a.train]
    e2 = [y for _, y in a.train]
    assert not all(torch.equal(u, v) for u, v in zip(e1, e2))  # reshuffled each epoch
    x, _ = next(iter(a.valid))
    v = a.apply(x, training=False)
    assert v.shape[-2:] == (32, 32) and v.dtype == torch.float32


def test_disk_cache_skips_decoding(folder_data, monkeypatch, tmp_path):
    folder_data.images(24, cache_dir=tmp_path / "c", progress=False)
    import dermlearn.data.cache as cache

    monkeypatch.setattr(cache, "_decode_one", lambda p, s: (_ for _ in ()).throw(AssertionError("decoded again")))
    fresh = dl.DermData.from_folder(folder_data.items["path"].iloc[0].rsplit("/", 2)[0])
    imgs = fresh.images(24, cache_dir=tmp_path / "c", progress=False)
    assert torch.equal(imgs, folder_data.images(24, cache_dir=tmp_path / "c"))


def test_augment_flip_identity_replay_and_batch_consistency():
    x = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    flip_only = BatchAugment(16, max_rotate=0, max_zoom=1.0, max_warp=0, max_lighting=0, seed=0)
    p = flip_only.sample(4)
    out = flip_only.apply_params(x, p)
    for i in range(4):
        ref = x[i].float() / 255
        if p.matrix[i, 0, 0] < 0:
            ref = ref.flip(-1)
        if p.matrix[i, 1, 1] < 0:
            ref = ref.flip(-2)
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0)
    aug = BatchAugment(12, seed=3)
    p = aug.sample(4)
    full = aug.apply_params(x, p)
    assert full.shape == (4, 3, 12, 12) and full.min() >= 0 and full.max() <= 1
    from dermlearn.data.augment import AugmentParams

    for i in range(4):
        one = AugmentParams(p.matrix[i : i + 1], p.brightness[i : i + 1], p.contrast[i : i + 1], p.saturation[i : i + 1])
        torch.testing.assert_close(aug.apply_params(x[i : i + 1], one), full[i : i + 1], atol=1e-6, rtol=0)
    a, b = BatchAugment(12, seed=9), BatchAugment(12, seed=9)
    torch.testing.assert_close(a(x), b(x))
    with pytest.raises(ValueError, match="max_zoom"):
        BatchAugment(12, max_zoom=0.5)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        aug(torch.zeros(3, 12, 12))


def test_show_batch(folder_data):
    fig = folder_data.show_batch(n=6, size=32)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 6 and set(titles) <= set(folder_data.classes)


# ---------------------------------------------------------------------------- balancing
def test_weighted_sampler_frequencies_ranks_and_determinism():
    labels = np.repeat(np.arange(3), [700, 200, 100])
    target = np.array([0.2, 0.3, 0.5])
    s = ClassWeightedSampler(labels, target, num_samples=100_000, seed=1)
    freq = np.bincount(labels[s.indices()], minlength=3) / 100_000
    assert np.abs(freq - target).max() < 0.01
    assert np.array_equal(s.indices(), ClassWeightedSampler(labels, target, 100_000, seed=1).indices())
    s.set_epoch(1)
    assert not np.array_equal(s.indices(), ClassWeightedSampler(labels, target, 100_000, seed=1).indices())
    # two ranks: same weights, disjoint interleaved slices of one global draw
    r0 = ClassWeightedSampler(labels, target, 1000, seed=2, rank=0, world_size=2).indices()
    r1 = ClassWeightedSampler(labels, target, 1000, seed=2, rank=1, world_size=2).indices()
    full = ClassWeightedSampler(labels, target, 1000, seed=2).indices()
    assert np.array_equal(full[0::2], r0) and np.array_equal(full[1::2], r1) and len(r0) == len(r1) == 500
    with pytest.raises(ValueError, match="class weights"):
        s.set_class_weights([1.0, -1.0, 1.0])


def test_static_oversampling_and_loss_weights():
    labels = np.repeat(np.arange(3), [50, 10, 5])
    idx = oversample_indices(labels, seed=0)
    assert np.bincount(labels[idx]).tolist() == [50, 50, 50]
    assert set(range(65)) <= set(idx.tolist())
    w = inverse_frequency_weights(labels, 4)
    torch.testing.assert_close(w, torch.tensor([65 / (3 * 50), 65 / (3 * 10), 65 / (3 * 5), 0.0]))


def test_milder_loss_weights_keep_the_loss_scale():
    labels = np.repeat(np.arange(3), [50, 10, 5])
    counts = np.array([50.0, 10.0, 5.0])

    def expected(e):  # w ∝ e ** -p for the present classes, mean 1 over the items
        w = 1.0 / e
        return w * 65 / (counts * w).sum()

    sqrt = inverse_frequency_weights(labels, 4, power=0.5)
    torch.testing.assert_close(sqrt[:3].double(), torch.from_numpy(expected(np.sqrt(counts))), rtol=1e-6, atol=0)
    assert sqrt[3] == 0 and float(sqrt[:3].double() @ torch.tensor(counts)) == pytest.approx(65)
    assert sqrt[2] / sqrt[0] == pytest.approx(np.sqrt(10))  # 50 / 5 = 10 times rarer, sqrt(10) times the weight
    torch.testing.assert_close(inverse_frequency_weights(labels, 3, power=0.0), torch.ones(3))
    eff = inverse_frequency_weights(labels, 3, beta=0.9)  # effective numbers (1 - 0.9^n) / 0.1
    torch.testing.assert_close(eff.double(), torch.from_numpy(expected((1 - 0.9**counts) / 0.1)), rtol=1e-6, atol=0)
    # beta -> 0: every class counts as one item (no weighting); beta -> 1: plain inverse frequency
    torch.testing.assert_close(inverse_frequency_weights(labels, 3, beta=0.0), torch.ones(3))
    torch.testing.assert_close(inverse_frequency_weights(labels, 3, beta=1 - 1e-9), inverse_frequency_weights(labels, 3), rtol=1e-5, atol=0)
    for kw, msg in [({"power": -1}, "power"), ({"power": float("nan")}, "power"), ({"beta": 1.0}, "beta")]:
        with pytest.raises(ValueError, match=msg):
            inverse_frequency_weights(labels, 3, **kw)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        inverse_frequency_weights(labels, 2)
    with pytest.raises(ValueError, match="no labels"):
        inverse_frequency_weights([], 2)


def test_recall_weights():
    w = recall_weights([0.9, 0.5, 0.7])
    assert w[1] > w[2] > w[0] > 0 and w.sum() == pytest.approx(1)
    assert np.allclose(recall_weights([0.6, 0.6, 0.6]), 1 / 3)
    assert recall_weights([1.0, 1.0, 0.0])[0] > 0  # never 0
    w2 = recall_weights([0.4, 0.5, 0.7])  # class 0's recall dropped
    assert w2[0] > w[0]
    with pytest.raises(ValueError, match="floor"):
        recall_weights([0.5], floor=0)


class ConstantClass(nn.Module):
    """Predicts class ``train_class`` in training mode and ``eval_class`` in eval mode."""

    def __init__(self, c, train_class=0, eval_class=0):
        super().__init__()
        self.c, self.train_class, self.eval_class = c, train_class, eval_class
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        out = torch.zeros(x.shape[0], self.c) + self.w
        out[:, self.train_class if self.training else self.eval_class] += 10
        return out


def test_dynamic_balance_moves_weight_to_weak_classes(folder_data):
    dls = folder_data.dls(bs=16, size=32, balance="dynamic", progress=False)
    assert any(isinstance(c, dl.DynamicBalance) for c in dls.cbs)
    learn = dl.Learner(dls, ConstantClass(3), progress=False, device="cpu")
    learn.fit(2, lr=0.0)
    hist = learn.dynamic_balance.history
    assert np.allclose(hist[0], 1 / 3)  # uniform at the start
    w = dls.train.sampler.class_weights
    assert w[1] == pytest.approx(w[2]) and w[1] > w[0] > 0  # class 0 has recall 1, the others 0
    assert w[0] == pytest.approx(0.1 / 2.3) and np.allclose(hist[1], w)


def test_dynamic_balance_reads_recall_from_the_chosen_source(folder_data):
    weights = {}
    for source in ("train", "valid"):
        dls = folder_data.dls(bs=16, size=32, balance="dynamic", progress=False)
        dls.cbs = [dl.DynamicBalance(source=source)]
        learn = dl.Learner(dls, ConstantClass(3, train_class=0, eval_class=1), progress=False, device="cpu")
        learn.fit(1, lr=0.0)
        weights[source] = dls.train.sampler.class_weights
    # in training the model is right on class 0 only, on the validation set on class 1 only
    assert np.allclose(weights["train"], np.array([0.1, 1.1, 1.1]) / 2.3)
    assert np.allclose(weights["valid"], np.array([1.1, 0.1, 1.1]) / 2.3)
    with pytest.raises(ValueError, match="source"):
        dl.DynamicBalance(source="test")


def test_dynamic_balance_momentum_damps_the_weights(folder_data):
    dls = folder_data.dls(bs=16, size=32, balance="dynamic", progress=False)
    dls.cbs = [dl.DynamicBalance(momentum=0.5)]
    learn = dl.Learner(dls, ConstantClass(3), progress=False, device="cpu")
    learn.fit(3, lr=0.0)
    new = np.array([0.1, 1.1, 1.1]) / 2.3  # recall 1 for class 0, 0 for the others, every epoch
    hist = np.array(learn.dynamic_balance.history)
    assert np.allclose(hist[1], 0.5 / 3 + 0.5 * new) and np.allclose(hist[2], 0.5 * hist[1] + 0.5 * new)
    assert np.isclose(sum(hist[2]), 1.0)
    for kw in ({"momentum": 1.0}, {"momentum": -0.1}, {"floor": 0.0}):
        with pytest.raises(ValueError, match=next(iter(kw))):
            dl.DynamicBalance(**kw)


def test_resample_draws_class_balanced_epochs_of_the_training_size(tmp_path):
    synthetic_folder(tmp_path, n=90, size=24)
    rare = sorted(p for p in tmp_path.iterdir() if p.is_dir())[0]
    for f in sorted(rare.iterdir())[6:]:  # 6 images left in the first class, about 30 in the others
        f.unlink()
    data = dl.DermData.from_folder(tmp_path)
    n_train = len(data.indices("train"))
    dls = data.dls(bs=8, size=16, balance="resample", progress=False, cache_dir=False)
    assert dls.cbs == [] and len(dls.train) == n_train // 8  # no callback; epochs as long as unbalanced ones
    epochs = [torch.cat([y for _, y in dls.train]) for _ in range(25)]
    assert not torch.equal(epochs[0], epochs[1])  # a fresh draw every epoch
    share = torch.bincount(torch.cat(epochs), minlength=3).double() / sum(len(e) for e in epochs)
    plain = torch.bincount(torch.from_numpy(data.y[data.indices("train")]), minlength=3).double() / n_train
    assert plain[0] < 0.15 and torch.allclose(share, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.06)
    again = data.dls(bs=8, size=16, balance="resample", progress=False, cache_dir=False)
    assert torch.equal(torch.cat([y for _, y in again.train]), epochs[0])  # seeded


def test_balance_arguments(folder_data):
    static = folder_data.dls(bs=8, size=32, balance="static", progress=False)
    drawn = torch.cat([y for _, y in static.train])
    counts = torch.bincount(drawn)
    assert counts.max() - counts.min() <= 8
    train_y = folder_data.y[folder_data.indices("train")]
    loss = folder_data.dls(bs=8, size=32, balance="loss", progress=False)
    torch.testing.assert_close(loss.class_weights, inverse_frequency_weights(train_y, 3))
    torch.testing.assert_close(folder_data.class_weights(power=0.5, beta=0.9), inverse_frequency_weights(train_y, 3, 0.5, 0.9))
    with pytest.raises(ValueError, match="balance"):
        folder_data.dls(balance="smote")


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


# ---------------------------------------------------------------------------- real data end to end
def test_pad_ufes_20_trains_end_to_end_at_128px():
    require_data("pad-ufes-20", "labels.csv")
    data = dl.DermData.pad_ufes_20()
    dls = data.dls(bs=32, size=128, balance="dynamic", progress=False)
    torch.manual_seed(0)
    learn = dl.Learner(dls, dl.create_model("resnet18", data.c), metrics=[dl.accuracy, dl.balanced_accuracy], progress=False)
    learn.fit_one_cycle(2, 2e-3)
    v = learn.recorder.values
    assert len(v) == 2 and np.isfinite(v[-1]["valid_loss"]) and 0 <= v[-1]["balanced_accuracy"] <= 1
    meta = dls.valid.dataset.meta
    assert {"patient_id", "fitzpatrick", "region", "mask"} <= set(meta[0])
    interp = dl.Interpretation.from_learner(learn)
    by_skin = interp.metrics_by_group([m["fitzpatrick"] for m in meta], name="fitzpatrick")
    assert by_skin["n"].sum() == len(meta) and "missing" in set(by_skin["fitzpatrick"].astype(str))


def test_dermamnist_official_split_and_test_loader():
    require_data("dermamnist.tar.gz")
    data = dl.DermData.dermamnist()
    assert data.counts().sum().to_dict() == {"test": 2005, "train": 7007, "valid": 1003}
    assert data.classes == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    dls = data.dls(bs=256, size=28, presize=28, progress=False)
    x, y = next(iter(dls.train))
    assert x.shape == (256, 3, 28, 28)
    te = data.test_dl(size=28, presize=28)
    assert len(te.dataset) == 2005


def test_cifar10_tables():
    require_data("cifar10.tar.gz")
    data = dl.DermData.cifar10()
    assert data.counts().sum().to_dict() == {"train": 50000, "valid": 10000} and data.c == 10
    study = dl.DermData.cifar10(test_as_valid=False)
    c = study.counts().sum().to_dict()
    assert c["test"] == 10000 and abs(c["valid"] / 50000 - 1 / 6) < 0.001


def test_fused_colour_pass_equals_stepwise_float64_reference():
    """Saturation, contrast, brightness, clamp and normalisation, done step by step in float64."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8, generator=g)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    aug = BatchAugment(16, flip=False, flip_vert=False, max_rotate=0, max_zoom=1.0, max_warp=0, max_lighting=0.5,
                       p_lighting=1.0, seed=1, mean=mean, std=std)  # fmt: skip
    p = aug.sample(5)
    out = aug.apply_params(x, p)
    v = x.double() / 255
    gray = 0.299 * v[:, 0:1] + 0.587 * v[:, 1:2] + 0.114 * v[:, 2:3]
    v = gray + (v - gray) * p.saturation.double().view(5, 1, 1, 1)
    m = v.mean(dim=(1, 2, 3), keepdim=True)
    v = (v - m) * p.contrast.double().view(5, 1, 1, 1) + m + p.brightness.double().view(5, 1, 1, 1)
    v = v.clamp(0, 1)
    ref = (v - torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)) / torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    torch.testing.assert_close(out.double(), ref, atol=2e-5, rtol=0)
    assert (p.brightness != 0).all() and (p.contrast != 1).all()


def test_bad_inputs_name_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="no items"):
        dl.DermData(pd.DataFrame({"path": [], "label": []}))
    synthetic_folder(tmp_path / "imgs", n=30, n_classes=3)
    table = dl.data.folder_table(tmp_path / "imgs")
    table["is_valid"] = table["label"] == "ulcer"  # every ulcer in validation: none left to train on
    with pytest.raises(ValueError, match=r"no training images for class\(es\) \['ulcer'\]"):
        dl.DermData(table, valid="is_valid").dls(bs=4, size=32, progress=False)
    rows = [str(p.relative_to(tmp_path)) for p in sorted((tmp_path / "imgs").rglob("*.png"))[:6]] + ["imgs/gone1.png", "imgs/gone2.png"]
    pd.DataFrame({"image": rows, "label": ["macula"] * 4 + ["tumor"] * 4}).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(ValueError, match="2 unreadable") as e:
        dl.DermData.from_csv(tmp_path / "m.csv").dls(bs=2, size=32, progress=False)
    assert "gone1.png: file not found" in str(e.value) and "gone2.png: file not found" in str(e.value)


def test_preprocess_runs_once_on_the_cache(folder_data):
    from dermlearn.transforms import AdjustGamma, adjust_gamma

    calls = {"n": 0}

    class Counting(AdjustGamma):
        def forward(self, x):
            calls["n"] += 1
            return super().forward(x)

    step = Counting(0.7)
    a = folder_data.dls(bs=8, size=32, progress=False, preprocess=[step])
    n = calls["n"]
    b = folder_data.dls(bs=8, size=32, progress=False, preprocess=[step])
    assert calls["n"] == n  # cached: not run again
    raw = folder_data.images(40)
    assert torch.equal(a.train.dataset.images, adjust_gamma(raw, 0.7)[torch.from_numpy(folder_data.indices("train"))])
    assert torch.equal(b.valid.dataset.images, adjust_gamma(raw, 0.7)[torch.from_numpy(folder_data.indices("valid"))])
