"""A confidence interval for a rate: ``k`` successes in ``n`` trials."""

from __future__ import annotations

import math

__all__ = ["wilson_interval"]

_Z95 = 1.959963984540054  # the 97.5 % quantile of the standard normal


def wilson_interval(k: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """Wilson's score interval for the rate ``k / n`` (default 95 %): inside [0, 1], never
    of zero width at ``k = 0`` or ``k = n`` (unlike the normal approximation), and close to
    its nominal coverage for small ``n``.

    Args:
        k: Successes, ``0 <= k <= n``.
        n: Trials, at least 1.
        z: The normal quantile of the interval's confidence (1.96 for 95 %).

    Returns:
        ``(low, high)``.
    """
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"wilson_interval needs 0 <= k <= n and n >= 1, got k={k}, n={n}")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # in exact arithmetic low <= p <= high; in floats the bound at k = 0 or k = n can miss p by an ulp
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))
