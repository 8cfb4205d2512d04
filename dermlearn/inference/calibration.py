"""Temperature scaling: make a trained model's probabilities mean what they say.

Networks trained to a low loss are often overconfident: of the photos they call 90 % sure,
fewer than 90 % are right. Temperature scaling (Guo et al., 2017) divides the logits by one
scalar ``T`` fitted on held-out photos to minimise their negative log-likelihood. It leaves
every ranking, and so the predicted class, the accuracy and the AUC, unchanged; only the
probabilities move (``T > 1`` softens them).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from dermlearn.losses import ACTIVATIONS, activation_name

__all__ = ["calibrate", "fit_temperature", "temperature_nll"]

_LOG_T_RANGE = (math.log(0.05), math.log(20.0))


def _activation(sigmoid: bool, activation: str | None) -> str:
    name = activation if activation is not None else ("sigmoid" if sigmoid else "softmax")
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {name!r}")
    return name


def temperature_nll(logits: Tensor, targets: Tensor, temperature: float, sigmoid: bool = False,
                    activation: str | None = None) -> float:  # fmt: skip
    """Mean negative log-likelihood of ``targets`` under ``logits / temperature`` (float64).

    Args:
        logits: ``(N, C)``.
        targets: Class indices ``(N,)`` or one-hot rows ``(N, C)``.
        temperature: ``T > 0``.
        sigmoid: Shorthand for ``activation='sigmoid'``.
        activation: How the model reports (a key of :data:`dermlearn.losses.ACTIVATIONS`):
            ``'softmax'`` (cross-entropy, the default), ``'sigmoid'`` (per-class sigmoids
            scored by binary cross-entropy on the one-hot targets: multi-label models) or
            ``'normalized_sigmoid'`` (the class probabilities a single-label BCE model
            reports, scored by ``-log p[target]``).
    """
    name = _activation(sigmoid, activation)
    z = logits.double() / temperature
    if name == "sigmoid":
        onehot = targets.double() if targets.ndim == 2 else F.one_hot(targets.long(), z.shape[1]).double()
        return float(F.binary_cross_entropy_with_logits(z, onehot))
    t = targets.argmax(1) if targets.ndim == 2 else targets.long()
    if name == "normalized_sigmoid":  # log of sigmoid(z_t) / sum_c sigmoid(z_c), without underflow
        log_p = F.logsigmoid(z) - torch.logsumexp(F.logsigmoid(z), dim=1, keepdim=True)
        return float(-log_p.gather(1, t[:, None]).mean())
    return float(F.cross_entropy(z, t))


def fit_temperature(logits: Tensor, targets: Tensor, sigmoid: bool = False, tol: float = 1e-6,
                    activation: str | None = None) -> float:  # fmt: skip
    """The temperature that minimises :func:`temperature_nll` on held-out predictions.

    The likelihood is unimodal in ``log T`` (convex in ``1 / T``), so a golden-section
    search over ``T`` in [0.05, 20] finds the minimum; a fit that ends at a bound warns.

    Args:
        logits: Raw model outputs ``(N, C)`` on images the model did not train on.
        targets: Class indices ``(N,)`` or one-hot rows ``(N, C)``.
        sigmoid: Shorthand for ``activation='sigmoid'`` (raw per-class sigmoids).
        tol: Width in ``log T`` at which the search stops.
        activation: How the model reports, as in :func:`temperature_nll` (a Learner passes
            its loss's ``activation_name``).

    Returns:
        ``T`` (> 0). Probabilities are then the activation of ``logits / T``.

    Raises:
        ValueError: For logits that are not ``(N, C)`` with ``N >= 1``, targets of another
            length, or non-finite logits.
    """
    if logits.ndim != 2 or len(logits) == 0:
        raise ValueError(f"logits must be (N, C) with N >= 1, got shape {tuple(logits.shape)}")
    if len(targets) != len(logits):
        raise ValueError(f"logits and targets differ in length: {len(logits)} and {len(targets)}")
    if not torch.isfinite(logits).all():
        raise ValueError("logits contain NaN or inf: calibrate a model whose outputs are finite")
    logits, targets = logits.detach().cpu(), targets.detach().cpu()
    name = _activation(sigmoid, activation)

    def f(log_t: float) -> float:
        return temperature_nll(logits, targets, math.exp(log_t), activation=name)

    inv_phi = (math.sqrt(5) - 1) / 2
    lo, hi = _LOG_T_RANGE
    a, b = hi - inv_phi * (hi - lo), lo + inv_phi * (hi - lo)
    fa, fb = f(a), f(b)
    while hi - lo > tol:
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - inv_phi * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + inv_phi * (hi - lo)
            fb = f(b)
    log_t = (lo + hi) / 2
    if min(abs(log_t - _LOG_T_RANGE[0]), abs(log_t - _LOG_T_RANGE[1])) < 1e-3:
        warnings.warn(f"the fitted temperature {math.exp(log_t):.3g} is at the edge of the search range [0.05, 20]: "
                      "the held-out predictions may be degenerate (all right with huge margins, or near chance)",
                      RuntimeWarning, stacklevel=2)  # fmt: skip
    return math.exp(log_t)


def calibrate(learn, dl: Iterable | None = None) -> float:
    """Fit ``learn.temperature`` on ``dl`` (default: the validation loader) and keep it; see
    :meth:`dermlearn.Learner.calibrate`.

    Returns:
        The temperature (> 1: the model was overconfident).
    """
    learn.temperature = 1.0
    logits, targets = learn.get_preds(dl, act=lambda z: z)
    learn.temperature = fit_temperature(logits, targets, activation=activation_name(learn.loss_func))
    return learn.temperature
