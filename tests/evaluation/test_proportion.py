"""Wilson's interval for a rate, against scipy's."""

from __future__ import annotations

import pytest

from dermlearn.evaluation.proportion import wilson_interval


@pytest.mark.parametrize(("k", "n"), [(0, 5), (5, 5), (3, 10), (47, 300), (299, 300), (1, 1)])
def test_wilson_interval_equals_scipys(k, n):
    stats = pytest.importorskip("scipy.stats")
    expected = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((expected.low, expected.high), abs=1e-12)


def test_wilson_interval_rejects_impossible_counts():
    for k, n in ((3, 2), (-1, 4), (0, 0)):
        with pytest.raises(ValueError, match="0 <= k <= n"):
            wilson_interval(k, n)


@pytest.mark.parametrize("n", [1, 3, 7, 30, 300, 1000])
def test_wilson_interval_holds_the_rate_at_the_ends(n):
    for k in (0, n):
        low, high = wilson_interval(k, n)
        assert low <= k / n <= high
