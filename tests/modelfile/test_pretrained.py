"""The Hugging Face layout: save_pretrained's folder, a bare .safetensors file and hf://
(offline, from a cache laid out as the hub's, through huggingface_hub itself) load back to
the same predictions; damaged files are clear errors; the model card says what it must."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

import dermlearn as dl
from dermlearn.modelfile.pretrained import CARD, CONFIG, WEIGHTS


def _same_predictions(a: dl.Learner, b: dl.Learner) -> None:
    pa, _ = a.get_preds(dl=a.dls.valid)
    pb, _ = b.get_preds(dl=a.dls.valid)
    torch.testing.assert_close(pa, pb, rtol=0, atol=0)


def test_folder_and_bare_safetensors_round_trip(trained, tmp_path):
    folder = trained.save_pretrained(tmp_path / "model", bootstrap=0)
    assert sorted(p.name for p in folder.iterdir()) == [CARD, CONFIG, WEIGHTS]
    from safetensors.torch import load_file

    weights = load_file(str(folder / WEIGHTS))
    state = trained.model.state_dict()
    assert weights.keys() == state.keys() and all(torch.equal(weights[k], state[k].cpu()) for k in state)
    config = json.loads((folder / CONFIG).read_text())
    exported = dl.load_learner(trained.export(tmp_path / "m.pth")).meta
    assert config == exported  # the same metadata as the export file
    loaded = dl.load_learner(folder, device="cpu")
    _same_predictions(trained, loaded)
    assert loaded.meta["classes"] == trained.dls.vocab and loaded.meta["activation"] == "normalized_sigmoid"
    alone = tmp_path / "alone" / "skin.safetensors"  # no config.json beside it: the header carries it
    alone.parent.mkdir()
    shutil.copy(folder / WEIGHTS, alone)
    _same_predictions(trained, dl.load_learner(alone, device="cpu"))


def test_damaged_files_are_clear_errors(trained, tmp_path):
    folder = trained.save_pretrained(tmp_path / "model", card=False)
    data = (folder / WEIGHTS).read_bytes()
    (folder / WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"model.safetensors: damaged weights file"):
        dl.load_learner(folder)
    (folder / WEIGHTS).write_bytes(data)
    (folder / CONFIG).write_text('{"arch": "simple_cnn",')
    with pytest.raises(ValueError, match=r"config.json: not a dermlearn model"):
        dl.load_learner(folder)
    (folder / CONFIG).write_text(json.dumps({"format": "someone-else"}))
    with pytest.raises(ValueError, match=r"config.json: not a dermlearn model config"):
        dl.load_learner(folder)
    meta = trained.export(tmp_path / "m.pth") and dl.load_learner(tmp_path / "m.pth").meta
    (folder / CONFIG).write_text(json.dumps({**meta, "n_out": 5, "classes": list("abcde")}))
    with pytest.raises(ValueError, match=r"the weights do not fit simple_cnn with 5 outputs"):
        dl.load_learner(folder)
    (folder / WEIGHTS).unlink()
    with pytest.raises(FileNotFoundError, match=r"no model.safetensors"):
        dl.load_learner(folder)


def test_hf_models_load_offline_from_the_hub_cache(trained, tmp_path):
    """A cache laid out as huggingface_hub lays it out (models--owner--name, refs/main, a
    snapshot per commit): hf://owner/name loads through snapshot_download with
    HF_HUB_OFFLINE=1, in a fresh process so that huggingface_hub reads the variables."""
    pytest.importorskip("huggingface_hub", reason="huggingface_hub is not installed: pip install -e '.[hub]'")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--derm--tiny"
    trained.save_pretrained(repo / "snapshots" / commit, bootstrap=0)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    item = trained.dls.valid.dataset[0][0]
    torch.save(item, tmp_path / "item.pt")
    code = ("import sys, torch, dermlearn as dl\n"
            "learn = dl.load_learner(sys.argv[1], device='cpu')\n"
            "print(learn.meta['arch'], ','.join(learn.meta['classes']))\n"
            "torch.save(learn.predict(torch.load(sys.argv[2]), check_domain=False)[2], sys.argv[3])\n")  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HOME": str(tmp_path / "home")}
    args = [str(tmp_path / "item.pt"), str(tmp_path / "probs.pt")]
    r = subprocess.run([sys.executable, "-c", code, "hf://derm/tiny", *args], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "simple_cnn " + ",".join(trained.dls.vocab)
    torch.testing.assert_close(torch.load(tmp_path / "probs.pt"), trained.predict(item, check_domain=False)[2], rtol=0, atol=0)
    r = subprocess.run([sys.executable, "-c", code, "hf://derm/absent", *args], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode != 0 and "hf://derm/absent: not in the hub cache and the hub cannot be reached" in r.stderr


def test_model_card_says_what_the_model_is_for_and_how_well_it_does(trained, tmp_path):
    n = len(trained.dls.valid.dataset)
    groups = ["I-II"] * (n - 5) + ["V-VI"] * 5
    folder = trained.save_pretrained(tmp_path / "model", groups=groups, group_name="Fitzpatrick skin type", bootstrap=200)
    card = (folder / CARD).read_text()
    assert card.startswith("---\nlibrary_name: dermlearn\n")
    assert "It is not a medical device" in card and "must not be used to decide on a person's care" in card
    assert "- classes (3): " + ", ".join(trained.dls.vocab) in card
    probs, targets = trained.get_preds()
    acc = float(dl.accuracy(probs, targets))
    assert f"| accuracy | {acc:.3f} [" in card  # the value, then its interval
    for c in trained.dls.vocab:
        assert f"| {c} | {int((targets == trained.dls.vocab.index(c)).sum())} |" in card
    assert "### By Fitzpatrick skin type" in card and "| V-VI | 5 | too few to read | too few to read |" in card
    assert "In order: resize(size=32), normalize(" in card
    with pytest.raises(ValueError, match="groups has 2 values for"):
        trained.save_pretrained(tmp_path / "other", groups=["a", "b"])
    both = trained.save_pretrained(tmp_path / "both", bootstrap=0, groups={"skin type": groups, "region": ["arm"] * n})
    card = (both / CARD).read_text()
    assert "### By skin type" in card and "### By region" in card and f"| arm | {n} |" in card
