"""The interpretation tests' shared model."""

from __future__ import annotations

import pytest
import torch

import dermlearn as dl


@pytest.fixture(scope="package")
def trained() -> dl.Learner:
    """A simple CNN with a linear head trained 8 epochs on 600 synthetic 64 px lesions of 5
    classes with confounders: maps with structure to test against (trained once for the
    interpretation tests)."""
    torch.manual_seed(0)
    dls = dl.synthetic_dataloaders(n=600, size=64, n_classes=5, bs=32, seed=2, center_jitter=0.3,
                                   confounders=("illumination", "gamma", "cast"), confound_p=0.4)  # fmt: skip
    learn = dl.Learner(dls, dl.create_model("simple_cnn", 5, head="linear"), metrics=[dl.accuracy], progress=False, device="cpu")
    learn.fit_one_cycle(8, 5e-3)
    return learn
