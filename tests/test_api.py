"""The public API is explicit and importable."""

from __future__ import annotations

import dermlearn


def test_all_names_exist_and_are_sorted_uniquely():
    names = dermlearn.__all__
    assert len(names) == len(set(names))
    for n in names:
        assert hasattr(dermlearn, n), n
    assert isinstance(dermlearn.__version__, str)


def test_core_entry_points_are_public():
    for n in ("Learner", "Callback", "DataLoaders", "create_model", "lr_find", "EarlyStopping", "SaveModelCallback",
              "ParamScheduler", "BCEWithLogitsOneHot", "make_lesions", "accuracy", "balanced_accuracy"):
        assert n in dermlearn.__all__
