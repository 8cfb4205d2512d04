"""The study's training recipe, shared by the command line and the experiments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .lr_finder import minimum, valley
from .tracker import EarlyStopping

__all__ = ["RecipeResult", "study_recipe"]


@dataclass
class RecipeResult:
    """What :func:`study_recipe` did: the learning rate, the LR-finder result (None when
    ``lr`` was given), and the per-epoch history of both phases (``phase`` 'head' / 'all')."""

    lr: float
    lr_find: Any = None
    history: list[dict[str, Any]] = field(default_factory=list)


RATE_RULES = ("valley", "minimum", "max")


def rate_from(suggestions: dict[str, float], rule: str) -> float:
    """The learning rate a range test's ``valley`` and ``minimum`` suggestions give under
    ``rule``: one of them, or ``'max'``, the larger of the two."""
    if rule not in RATE_RULES:
        raise ValueError(f"suggestion must be one of {', '.join(RATE_RULES)}, got {rule!r}")
    return max(suggestions["minimum"], suggestions["valley"]) if rule == "max" else suggestions[rule]


def study_recipe(learn, pretrained: bool, lr: float | None = None, head_cycles: int = 2, cycles: int = 2,
                 patience: int = 2, extra_cbs=(), log=print, lr_find_iters: int = 100,
                 suggestion: str | None = None) -> RecipeResult:  # fmt: skip
    """Train ``learn`` as the study did.

    With pretrained weights: LR range test on the frozen body (fastai's ``valley``), the new
    head with SGDR (``head_cycles`` cycles, cycle length doubling), then all layers with
    discriminative learning rates ``slice(lr/100, lr/10)``, SGDR and early stopping on the
    validation loss (best weights restored). From random initialisation there is no
    pretrained body to protect: LR range test (``valley`` too), then all layers with SGDR
    and early stopping.

    ``suggestion`` (``'valley'``, ``'minimum'`` or ``'max'`` of the two) overrides that
    choice of the range test's rate; ``lr`` skips the range test.
    """
    if suggestion not in (None, *RATE_RULES):  # before any training
        raise ValueError(f"suggestion must be None or one of {', '.join(RATE_RULES)}, got {suggestion!r}")
    if pretrained:
        learn.freeze()
    res = None
    if lr is None:
        res = learn.lr_find(num_it=lr_find_iters, suggest_funcs=(valley, minimum), show_plot=False)
        # valley in both cases. From scratch the larger of Smith's "minimum" rule and valley
        # was tried: with BCE-with-logits the sweep's loss keeps falling to high rates (the
        # biases learn the class prior), minimum came out 4-10x valley and the first epoch
        # diverged (PAD-UFES-20, 2 seeds: accuracy 0.39 / 0.32 against valley's 0.51 / 0.40)
        lr = rate_from(res.suggestions, suggestion or "valley")
        log("lr_find: " + ", ".join(f"{k}={v:.2e}" for k, v in res.suggestions.items()) + f" -> lr {lr:.2e}")
    out = RecipeResult(lr=float(lr), lr_find=res)
    es = EarlyStopping(monitor="valid_loss", patience=patience, restore_best_weights=True)
    if pretrained:
        log(f"head: fit_sgdr({head_cycles}, 1, lr_max={lr:.2e}, cycle_mult=2)")
        learn.fit_sgdr(head_cycles, 1, lr_max=lr, cycle_mult=2, cbs=list(extra_cbs))
        out.history += [{"phase": "head", **r} for r in learn.recorder.values]
        learn.unfreeze()
        log(f"all layers: fit_sgdr({cycles}, 1, lr_max=slice({lr / 100:.2e}, {lr / 10:.2e}), cycle_mult=2), early stopping")
        learn.fit_sgdr(cycles, 1, lr_max=slice(lr / 100, lr / 10), cycle_mult=2, cbs=[es, *extra_cbs])
    else:
        log(f"random init, all layers: fit_sgdr({cycles}, 1, lr_max={lr:.2e}, cycle_mult=2), early stopping")
        learn.fit_sgdr(cycles, 1, lr_max=lr, cycle_mult=2, cbs=[es, *extra_cbs])
    out.history += [{"phase": "all", **r} for r in learn.recorder.values]
    return out
