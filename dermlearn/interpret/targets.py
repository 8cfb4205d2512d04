"""Which score an attribution explains: top-1, runner-up, a given class, or any function
of the logits (e.g. a logit difference between two confused classes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Union

import torch
from torch import Tensor

__all__ = ["Target", "logit_diff", "resolve_target"]

#: ``'top1'``, ``'runner_up'``, a class index, a tensor of indices ``(B,)``, or a callable
#: ``logits (B, C) -> scores (B,)``.
Target = Union[str, int, Tensor, Callable[[Tensor], Tensor]]


def logit_diff(a: int, b: int) -> Callable[[Tensor], Tensor]:
    """Target ``logit[a] - logit[b]``: what makes the model prefer class a over class b."""

    def score(logits: Tensor) -> Tensor:
        return logits[:, a] - logits[:, b]

    score.__name__ = f"logit_diff({a},{b})"
    return score


def resolve_target(logits: Tensor, target: Target) -> tuple[Tensor, Tensor | None]:
    """Scores ``(B,)`` to differentiate and the class index of each item (None for a
    callable target).

    Raises:
        ValueError: an unknown name, an index out of range or a wrong-sized tensor.
    """
    n, c = logits.shape
    if callable(target) and not isinstance(target, Tensor):
        scores = target(logits)
        if scores.shape != (n,):
            raise ValueError(f"a target function must return one score per item, shape ({n},), got {tuple(scores.shape)}")
        return scores, None
    if isinstance(target, str):
        if target not in ("top1", "runner_up"):
            raise ValueError(f"target must be 'top1', 'runner_up', a class index, a tensor or a callable, got {target!r}")
        if target == "runner_up" and c < 2:
            raise ValueError("'runner_up' needs at least two classes")
        order = logits.detach().topk(2 if target == "runner_up" else 1, dim=1).indices
        idx = order[:, -1]
    elif isinstance(target, int):
        if not 0 <= target < c:
            raise ValueError(f"target class {target} is out of range for {c} classes")
        idx = torch.full((n,), target, dtype=torch.long, device=logits.device)
    else:
        idx = torch.as_tensor(target, device=logits.device).long().flatten()
        if idx.shape != (n,) or (idx < 0).any() or (idx >= c).any():
            raise ValueError(f"a target tensor must hold {n} class indices in [0, {c}), got {target}")
    return logits.gather(1, idx[:, None])[:, 0], idx
