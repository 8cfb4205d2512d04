"""DermData: folders and CSVs, validation sets, loaders, the decode cache, bad inputs."""


from __future__ import annotations

import pandas as pd
import pytest
import torch

import dermlearn as dl
from tests.helpers import synthetic_folder


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))


# ---------------------------------------------------------------------------- loader + augmentation


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


def test_show_batch(folder_data):
    fig = folder_data.show_batch(n=6, size=32)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 6 and set(titles) <= set(folder_data.classes)


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


def test_subset_keeps_every_class_and_all_held_out_items():
    # a folder table lists its items class by class: the first items are all of one class
    labels = ["a"] * 50 + ["b"] * 40 + ["c"] * 3 + ["a"] * 10 + ["b"] * 10 + ["c"] * 5
    split = ["train"] * 93 + ["valid"] * 20 + ["test"] * 5
    items = pd.DataFrame({"path": [f"img{i}.png" for i in range(len(labels))], "label": labels, "split": split})
    data = dl.DermData(items, seed=3)
    small = data.subset(5)
    train = small.items.iloc[small.indices("train")]
    assert len(train) == 5 and set(train["label"]) == {"a", "b", "c"}
    assert set(train["path"]) <= set(items["path"][:93])
    assert len(small.indices("valid")) == 20 and len(small.indices("test")) == 5
    assert data.subset(5).items["path"].tolist() == small.items["path"].tolist()  # seeded
    tiny = data.subset(5, n_held_out=4)
    assert len(tiny.indices("valid")) == 4 and len(tiny.indices("test")) == 4
    assert set(tiny.items.iloc[tiny.indices("valid")]["label"]) == {"a", "b"}  # the classes valid has
    with pytest.raises(ValueError, match="n_train"):
        data.subset(0)
    with pytest.raises(ValueError, match="n_held_out"):
        data.subset(5, n_held_out=0)
