"""Shared fixtures: reference vectors, real-data location, tiny problems."""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import dermlearn as dl
from dermlearn.training.optim import params_of
from tests.helpers import image_tensor, synthetic_folder

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
SHARED = REPO.parent / "shared"


def data_dir() -> Path:
    """Real data: $DERMLEARN_DATA, default ../shared/data seen from the repo root."""
    return Path(os.environ.get("DERMLEARN_DATA", SHARED / "data"))


def require_data(*parts: str) -> Path:
    """Path under the real-data folder, or skip the test with the reason."""
    p = data_dir().joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not found at {p} (set DERMLEARN_DATA)")
    return p


def reference_dir() -> Path:
    """Reference vectors and the study's tables: ``reference/`` beside the real-data folder
    (so ``DERMLEARN_DATA`` moves both)."""
    return data_dir() / ".." / "reference"


@pytest.fixture(scope="session")
def traces() -> dict:
    p = reference_dir() / "fastai-2.8.12-lr-traces.json"
    if not p.exists():
        pytest.skip(f"reference traces not found at {p}")
    return json.loads(p.read_text())


@pytest.fixture(scope="session")
def paper_tables() -> dict:
    p = reference_dir() / "paper-tables.json"
    if not p.exists():
        pytest.skip(f"paper tables not found at {p}")
    return json.loads(p.read_text())


class ThreeGroupMLP(nn.Module):
    """8-16-16-2 MLP declaring three layer groups (one Linear each)."""

    def __init__(self, n_in: int = 8, n_out: int = 2) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(n_in, 16), nn.Linear(16, 16), nn.Linear(16, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l3(torch.relu(self.l2(torch.relu(self.l1(x)))))

    def split_params(self):
        return [params_of(self.l1), params_of(self.l2), params_of(self.l3)]


def blobs(n: int = 160, seed: int = 0, shift: float = 0.8) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 8, generator=g) + shift * (2 * y[:, None] - 1).float()
    return TensorDataset(x, y)


def tiny_learner(bs: int = 16, n: int = 160, seed: int = 0, **kw) -> dl.Learner:
    """Two-class blobs, 10 batches per epoch of 16 (as the reference traces), 3 groups."""
    torch.manual_seed(seed)
    train = DataLoader(blobs(n, seed), batch_size=bs, shuffle=False)
    valid = DataLoader(blobs(64, seed + 1), batch_size=32)
    kw.setdefault("progress", False)
    return dl.Learner((train, valid), ThreeGroupMLP(), device="cpu", **kw)


@pytest.fixture
def learner() -> dl.Learner:
    return tiny_learner()


@pytest.fixture(scope="session")
def _public_data_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("public-data-cache")


@pytest.fixture
def public_data_cache(_public_data_cache, monkeypatch) -> Path:
    """``DERMLEARN_CACHE`` pointed at one folder shared by every test of the run that reads
    the public datasets: CIFAR-10's 60,000 files are unpacked once a run (30-60 s on 2
    cores) rather than once a test, DermaMNIST's 10,015 and the PAD-UFES-20 decodes too,
    as a user's cache would keep them. Never the user's own cache; tests of the cache itself
    keep a folder of their own."""
    monkeypatch.setenv("DERMLEARN_CACHE", str(_public_data_cache))
    return _public_data_cache


@pytest.fixture(scope="session")
def lesion_dls() -> dl.DataLoaders:
    return dl.synthetic_dataloaders(n=160, size=32, n_classes=4, bs=16, seed=0)


@pytest.fixture(scope="session")
def pad_images() -> list:
    """The first 12 PAD-UFES-20 photos with their lesion masks: ``[(uint8 (3, H, W), bool (H, W))]``."""
    import pandas as pd

    root = require_data("pad-ufes-20", "labels.csv").parent
    table = pd.read_csv(root / "labels.csv").head(12)
    return [(image_tensor(root / p), image_tensor(root / m)[0] > 127) for p, m in zip(table["image"], table["mask"])]


@pytest.fixture(scope="module")
def folder_data(tmp_path_factory) -> dl.DermData:
    """DermData of 90 synthetic 40 px lesions of 3 classes, written as an image folder."""
    root = tmp_path_factory.mktemp("folder")
    synthetic_folder(root, n=90, size=40, n_classes=3)
    return dl.DermData.from_folder(root)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dl.Learner:
    """A simple CNN with the study's BCE loss, one epoch on 60 synthetic 40 px images of 3
    classes read from a folder (resized to 32 px), on the CPU."""
    root = tmp_path_factory.mktemp("imgs")
    synthetic_folder(root, n=60, size=40, n_classes=3)
    data = dl.DermData.from_folder(root)
    dls = data.dls(bs=16, size=32, progress=False, cache_dir=False)
    torch.manual_seed(0)
    learn = dl.Learner(dls, dl.create_model("simple_cnn", 3), loss_func=dl.BCEWithLogitsOneHot(), progress=False, device="cpu")
    learn.fit(1, lr=3e-3)
    return learn
