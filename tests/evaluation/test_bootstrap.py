"""Bootstrap intervals: normal approximation, groups, BCa against scipy, bad inputs."""


from __future__ import annotations

import numpy as np
import pytest
import torch

import dermlearn as dl


def test_bootstrap_interval_of_an_accuracy_matches_the_normal_approximation():
    g = torch.Generator().manual_seed(5)
    n = 1000
    targs = torch.randint(0, 3, (n,), generator=g)
    right = torch.rand(n, generator=g) < 0.7
    probs = torch.nn.functional.one_hot(torch.where(right, targs, (targs + 1) % 3), 3).float() * 0.8 + 0.2 / 3
    value, low, high = dl.bootstrap_ci(dl.accuracy, probs, targs, n=2000, seed=0)
    p = float(right.double().mean())
    assert value == pytest.approx(p)
    half = 1.959964 * np.sqrt(p * (1 - p) / n)  # closed form for a proportion
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)
    assert low < value < high and abs((low + high) / 2 - p) < 0.2 * half
    assert dl.bootstrap_ci(dl.accuracy, probs, targs, n=2000, seed=0) == (value, low, high)  # seeded
    # another seed, other resamples (the accuracy's bounds are multiples of 1/1000 and may agree)
    noisy = probs + torch.rand(n, 3, generator=g)
    auc = dl.bootstrap_ci(dl.roc_auc, noisy, targs, n=100, seed=0)
    assert dl.bootstrap_ci(dl.roc_auc, noisy, targs, n=100, seed=0) == auc
    assert dl.bootstrap_ci(dl.roc_auc, noisy, targs, n=100, seed=1)[1:] != auc[1:]
    narrow = dl.bootstrap_ci(dl.accuracy, probs, targs, n=2000, level=0.5, seed=0)
    assert low < narrow[1] < narrow[2] < high


def test_bootstrap_over_groups_is_not_fooled_by_copies():
    """Four copies of each item look like four times the evidence to the item bootstrap; the
    group bootstrap, one group per original item, gives back the width of the originals."""
    g = torch.Generator().manual_seed(6)
    targs = torch.randint(0, 2, (300,), generator=g)
    probs = torch.softmax(torch.randn(300, 2, generator=g) + 1.0 * torch.nn.functional.one_hot(targs, 2), 1)
    once = dl.bootstrap_ci(dl.roc_auc, probs, targs, n=1000, seed=0)
    copies_p, copies_t, groups = probs.repeat(4, 1), targs.repeat(4), list(range(300)) * 4
    naive = dl.bootstrap_ci(dl.roc_auc, copies_p, copies_t, n=1000, seed=0)
    grouped = dl.bootstrap_ci(dl.roc_auc, copies_p, copies_t, n=1000, groups=groups, seed=0)
    width = lambda ci: ci[2] - ci[1]  # noqa: E731
    assert once[0] == pytest.approx(naive[0]) == pytest.approx(grouped[0])
    assert width(grouped) == pytest.approx(width(once), rel=0.15)
    assert width(naive) < 0.6 * width(once)  # about half: sqrt(4)


def test_bca_interval_holds_a_biased_metric_and_matches_scipy():
    """The calibration error of a resample is biased upward, so its percentile interval sat
    above the estimate (0.0575 in [0.0544, 0.1627] was reported); the BCa interval holds it
    and equals scipy.stats.bootstrap's BCa up to resampling noise."""
    from scipy import stats

    # a calibrated model (labels drawn from its own probabilities) on 120 images, as the
    # validation split where it was seen: the estimate is nearly all bias
    g = torch.Generator().manual_seed(0)
    logits = 2 * torch.randn(120, 5, generator=g)
    targs = torch.multinomial(logits.softmax(1), 1, generator=g)[:, 0]
    probs = logits.softmax(1)
    ece = dl.expected_calibration_error
    value, low_p, high_p = dl.bootstrap_ci(ece, probs, targs, n=1000, method="percentile")
    _, low, high = dl.bootstrap_ci(ece, probs, targs, n=1000)
    assert value - low_p < 0.15 * (high_p - low_p)  # the percentile interval's lower edge hugs the value
    assert low < value < high and value - low > 0.3 * (high - low) and high < high_p
    ref = stats.bootstrap((np.arange(120),), lambda i: float(ece(probs[i.astype(int)], targs[i.astype(int)])),
                          vectorized=False, n_resamples=1000, method="BCa", random_state=0).confidence_interval  # fmt: skip
    width = ref.high - ref.low  # 1000 resamples each: the bounds agree to their resampling noise
    assert abs(low - ref.low) < 0.2 * width and abs(high - ref.high) < 0.2 * width
    # an unbiased, symmetric metric: BCa and percentile agree
    acc_p, acc = (dl.bootstrap_ci(dl.accuracy, probs, targs, n=1000, method=m) for m in ("percentile", "bca"))
    assert acc[1:] == pytest.approx(acc_p[1:], abs=0.011)
    with pytest.raises(ValueError, match="method must be 'bca' or 'percentile'"):
        dl.bootstrap_ci(dl.accuracy, probs, targs, method="basic")


def test_bootstrap_names_bad_inputs():
    probs, targs = torch.rand(20, 3), torch.randint(0, 3, (20,))
    with pytest.raises(ValueError, match="n must be >= 10"):
        dl.bootstrap_ci(dl.accuracy, probs, targs, n=5)
    with pytest.raises(ValueError, match=r"level must be in \(0, 1\)"):
        dl.bootstrap_ci(dl.accuracy, probs, targs, level=95)
    with pytest.raises(ValueError, match="scalar metric; per_class_recall returned shape"):
        dl.bootstrap_ci(dl.per_class_recall, probs, targs)
    with pytest.raises(ValueError, match="groups has 3 values for 20 items"):
        dl.bootstrap_ci(dl.accuracy, probs, targs, groups=[1, 2, 3])
    with pytest.raises(ValueError, match="differ in length"):
        dl.bootstrap_ci(dl.accuracy, probs, targs[:10])
