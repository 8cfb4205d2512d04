"""Who the model fails: the analysis experiment's subgroup scores and Grad-CAM pointing game
written from an Interpretation, checked against recomputation from its parts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import dermlearn as dl
from dermlearn.evaluation.subgroups import subgroup_metrics
from dermlearn.experiments.who_fails import write_who_fails
from dermlearn.interpret.gradcam import GradCAM
from dermlearn.interpret.pointing_game import pointing_hits
from tests.helpers import synthetic_folder


@pytest.fixture
def interp_and_meta(tmp_path, monkeypatch):
    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    synthetic_folder(tmp_path / "imgs", n=72, size=32)
    table = dl.data.folder_table(tmp_path / "imgs")
    masks = tmp_path / "masks"
    masks.mkdir()
    paths = []
    for i in range(len(table)):  # a lesion mask per photo: a square whose place varies
        m = np.zeros((32, 32), dtype=np.uint8)
        r, c = 4 + (i * 5) % 16, 4 + (i * 3) % 16
        m[r : r + 10, c : c + 10] = 255
        if i % 9 == 0:
            m[:] = 0  # no lesion drawn: the pointing game has no answer
        Image.fromarray(m).save(masks / f"{i}.png")
        paths.append(str(masks / f"{i}.png"))
    table["mask"] = paths
    table["fitzpatrick"] = [("II", "III", "V")[i % 3] for i in range(len(table))]
    table["patient_id"] = [f"p{i // 2}" for i in range(len(table))]
    data = dl.DermData(table, group_col="patient_id", valid_pct=0.5)
    dls = data.dls(bs=16, size=32, augment=False, progress=False)
    torch.manual_seed(0)
    learn = dl.Learner(dls, dl.create_model("resnet18", data.c, stem="small"), progress=False)
    learn.fit(1, 1e-3)
    interp = dl.Interpretation.from_learner(learn)
    meta = data.items.iloc[data.indices("valid")].reset_index(drop=True)
    return interp, meta, data


def test_cam_maps_are_the_predicted_class_maps_of_each_item(interp_and_meta):
    interp, _, _ = interp_and_meta
    maps = interp.cam_maps(bs=5)
    assert maps.shape == (len(interp.targets), 32, 32) and (maps >= 0).all()
    assert torch.allclose(interp.cam_maps([3])[0], maps[3], atol=1e-5)  # batching does not change an item's map
    direct = GradCAM(interp.learn.model)(interp._inputs([3, 4]), "top1").maps.cpu()
    assert torch.allclose(direct, maps[[3, 4]], atol=1e-5)


def test_who_fails_writes_subgroups_and_the_pointing_game(interp_and_meta, tmp_path):
    interp, meta, data = interp_and_meta
    units = data.groups("valid")
    written = write_who_fails(interp, meta, tmp_path / "out", 32, units=units, n_boot=50, log=lambda s: None)
    sub = pd.read_csv(tmp_path / "out" / "subgroups.csv")
    assert sub["by"].eq("fitzpatrick").all() and sub["n"].sum() == len(meta)
    expected = subgroup_metrics(interp.probs, interp.targets, meta["fitzpatrick"].tolist(), units, 50)
    assert np.allclose(sub.set_index("group")["accuracy"].sort_index(), expected.set_index("group")["accuracy"].sort_index())
    game = pd.read_csv(tmp_path / "out" / "pointing_game.csv").set_index("predictions")
    masks = torch.stack([torch.from_numpy(np.asarray(Image.open(p)) > 127) for p in meta["mask"]])
    hits = pointing_hits(interp.cam_maps(), masks, tolerance=round(15 * 32 / 224))
    correct = interp.preds == interp.targets
    empty = int((~masks.flatten(1).any(1)).sum())
    assert empty > 0 and game.loc["all", "undefined"] == int(torch.isnan(hits).sum()) >= empty  # empty masks: no answer
    for name, sel in (("all", torch.ones_like(correct)), ("correct", correct), ("wrong", ~correct)):
        h = hits[sel]
        h = h[~torch.isnan(h)]
        assert game.loc[name, "images"] == len(h) and game.loc[name, "hits"] == int(h.sum())
        if len(h):
            assert game.loc[name, "hit rate"] == pytest.approx(float(h.mean()))
    assert written["pointing_game"]["hit_rate"] == pytest.approx(game.loc["all", "hit rate"])
    assert "readable" in (tmp_path / "out" / "subgroups.md").read_text()
    with pytest.raises(ValueError, match="rows"):
        write_who_fails(interp, meta.iloc[1:], tmp_path / "bad", 32)


def test_who_fails_writes_nothing_without_the_metadata(interp_and_meta, tmp_path):
    interp, meta, _ = interp_and_meta
    assert write_who_fails(interp, meta[["path", "label"]], tmp_path / "none", 32, log=lambda s: None) == {}
    assert not (tmp_path / "none").exists() or not any((tmp_path / "none").iterdir())
