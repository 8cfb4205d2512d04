import numpy as np
import pytest
import torch

from dermlearn.evaluation.metrics import accuracy, balanced_accuracy
from dermlearn.evaluation.subgroups import subgroup_metrics


def _data(n=90, seed=0):
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, 3, (n,), generator=g)
    probs = torch.softmax(torch.randn(n, 3, generator=g) + 2.0 * torch.nn.functional.one_hot(targets, 3), dim=1)
    return probs, targets


def test_each_group_is_scored_on_its_own_images_with_units_resampled_together():
    probs, targets = _data()
    skin = [2.0] * 40 + [3.0] * 35 + [float("nan")] * 10 + [6.0] * 5  # as pandas reads a numeric column with gaps
    patients = [i // 2 for i in range(90)]  # two photos per patient
    table = subgroup_metrics(probs, targets, skin, units=patients, n_boot=200, min_n=20).set_index("group")
    assert list(table.index) == ["2", "3", "6", "unknown"]  # numbers in order, missing values last
    for group, sl in (("2", slice(0, 40)), ("3", slice(40, 75)), ("unknown", slice(75, 85)), ("6", slice(85, 90))):
        row = table.loc[group]
        assert row["n"] == sl.stop - sl.start and row["units"] == len(set(patients[sl]))
        assert row["accuracy"] == pytest.approx(float(accuracy(probs[sl], targets[sl])))
        assert row["balanced accuracy"] == pytest.approx(float(balanced_accuracy(probs[sl], targets[sl])))
    assert table.loc["2", "readable"] and table.loc["2", "accuracy low"] <= table.loc["2", "accuracy"] <= table.loc["2", "accuracy high"]
    # too small to read: marked, and no interval that would look like a finding
    assert not table.loc["6", "readable"] and np.isnan(table.loc["6", "accuracy low"])


def test_subgroups_reject_misaligned_inputs():
    probs, targets = _data(10)
    with pytest.raises(ValueError, match="subgroups has 9 values for 10 images"):
        subgroup_metrics(probs, targets, ["a"] * 9)
    with pytest.raises(ValueError, match="units has 3 values"):
        subgroup_metrics(probs, targets, ["a"] * 10, units=[1, 2, 3])
    with pytest.raises(ValueError, match="probs must be"):
        subgroup_metrics(probs[:, 0], targets, ["a"] * 10)
