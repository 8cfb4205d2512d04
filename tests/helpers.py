"""Helpers the tests share: where the real data is, tiny problems to train, image folders
and vignetted images to build. (Fixtures live in ``conftest.py``.)"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

import dermlearn as dl
from dermlearn.models import params_of

REPO = Path(__file__).resolve().parents[1]
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
    """Two Gaussian blobs in 8 dimensions, classes alternating."""
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


def synthetic_folder(root: Path, n: int = 60, size: int = 32, seed: int = 0, n_classes: int = 3):
    """Synthetic lesions written as PNGs into one subfolder per class; returns the dataset."""
    ds = dl.make_lesions(n=n, size=size, n_classes=n_classes, seed=seed)
    for i in range(n):
        d = root / ds.classes[int(ds.labels[i])]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(ds.images[i].permute(1, 2, 0).numpy()).save(d / f"{i:04d}.png")
    return ds


def image_folder(tmp_path: Path, n: int = 90) -> Path:
    """``tmp_path/imgs``: ``n`` synthetic 40 px lesions of 3 classes, one folder per class."""
    synthetic_folder(tmp_path / "imgs", n=n, size=40, n_classes=3)
    return tmp_path / "imgs"


def vignetted(s: int, fields, w: int | None = None, seed: int = 0) -> Tensor:
    """Skin-coloured noisy images ``(B, 3, s, w)`` with black outside each circle (None: no vignette)."""
    w = w or s
    yy, xx = np.mgrid[0:s, 0:w]
    rng = np.random.default_rng(seed)
    out = []
    for field in fields:
        img = np.clip(np.array([190, 150, 140]) + rng.normal(0, 8, (s, w, 3)), 0, 255).astype(np.uint8)
        if field is not None:
            cx, cy, r = field
            img[np.hypot(xx + 0.5 - cx, yy + 0.5 - cy) > r] = 12
        out.append(torch.from_numpy(img).permute(2, 0, 1))
    return torch.stack(out)


def image_tensor(path: Path) -> Tensor:
    """An image file as the data pipeline decodes it, uint8 ``(3, H, W)``."""
    from dermlearn.data.decode import load_image

    return torch.from_numpy(np.array(load_image(path))).permute(2, 0, 1).contiguous()


def untrained_model_file(tmp_path: Path, size: int = 32) -> Path:
    """An exported simple CNN on three synthetic classes, untrained (predictions are then
    arbitrary but deterministic): enough for the output-file tests."""
    torch.manual_seed(0)
    dls = dl.synthetic_dataloaders(n=30, size=size, n_classes=3, bs=10, seed=0)
    learn = dl.Learner(dls, dl.create_model("simple_cnn", 3), progress=False, device="cpu")
    return learn.export(tmp_path / "model.pth")
