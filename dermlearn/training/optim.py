"""Layer groups, discriminative learning rates and optimizer construction.

A model is split into *layer groups* (lists of parameters) by a splitter; the optimizer
gets torch param groups tagged with their ``layer_group`` index (each layer group is split
in two: parameters that get weight decay and BatchNorm/bias parameters that do not).

Hyper-parameter names are fastai's and map onto torch optimizers:

========  ==========================================================
``lr``    ``lr``
``mom``   ``betas[0]`` (Adam family) or ``momentum`` (SGD, RMSprop)
``sqr_mom`` ``betas[1]`` (Adam family) or ``alpha`` (RMSprop)
``wd``    ``weight_decay`` (only on groups that take weight decay)
``eps``   ``eps``
========  ==========================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Union

import numpy as np
import torch
from torch import nn

from dermlearn.models import params_of

__all__ = [
    "LearningRate",
    "OptFactory",
    "adamw",
    "even_mults",
    "get_hyper",
    "lr_per_group",
    "make_param_groups",
    "params_of",
    "set_hyper",
    "sgd",
    "trainable_split",
]

LearningRate = Union[float, slice, Sequence[float], np.ndarray]
OptFactory = Callable[[list[dict]], torch.optim.Optimizer]

_NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


def trainable_split(model: nn.Module) -> list[list[nn.Parameter]]:
    """Default splitter: one layer group with every parameter of ``model``."""
    return [params_of(model)]


def _no_decay_ids(model: nn.Module) -> set[int]:
    """Ids of parameters that take no weight decay: normalisation layers and biases."""
    ids: set[int] = set()
    for m in model.modules():
        for pname, p in m.named_parameters(recurse=False):
            if isinstance(m, _NORM_TYPES) or pname == "bias":
                ids.add(id(p))
    return ids


def _bn_ids(model: nn.Module) -> set[int]:
    return {id(p) for m in model.modules() if isinstance(m, _NORM_TYPES) for p in m.parameters(recurse=False)}


def make_param_groups(model: nn.Module, groups: list[list[nn.Parameter]], wd: float) -> list[dict]:
    """torch param groups for ``groups``: for each layer group a decayed and a non-decayed
    group (empty ones dropped), each tagged with ``layer_group``.

    Raises:
        ValueError: if the splitter leaves out trainable parameters or repeats one.
    """
    all_ids = [id(p) for g in groups for p in g]
    if len(all_ids) != len(set(all_ids)):
        raise ValueError("the splitter put a parameter in more than one layer group")
    missing = [n for n, p in model.named_parameters() if id(p) not in set(all_ids)]
    if missing:
        raise ValueError(f"the splitter left out {len(missing)} parameters, e.g. {missing[:3]}")
    no_decay = _no_decay_ids(model)
    out = []
    for i, g in enumerate(groups):
        decay = [p for p in g if id(p) not in no_decay]
        rest = [p for p in g if id(p) in no_decay]
        if decay:
            out.append({"params": decay, "layer_group": i, "weight_decay": wd, "takes_wd": True})
        if rest:
            out.append({"params": rest, "layer_group": i, "weight_decay": 0.0, "takes_wd": False})
    return out


def even_mults(start: float, stop: float, n: int) -> np.ndarray:
    """``n`` values from ``start`` to ``stop`` evenly spaced on a log scale (float64)."""
    if n == 1:
        return np.array([stop], dtype=np.float64)
    mult = (stop / start) ** (1.0 / (n - 1))
    return np.array([start * mult**i for i in range(n)], dtype=np.float64)


def lr_per_group(lr: LearningRate, n_groups: int) -> np.ndarray:
    """Learning rate for each of ``n_groups`` layer groups (float64 array).

    * a float: the same for every group;
    * ``slice(hi)``: ``hi / 10`` for every group but the last, which gets ``hi``;
    * ``slice(lo, hi)``: geometric spread from ``lo`` (first group) to ``hi`` (last);
    * a sequence: one value per group.
    """
    if isinstance(lr, slice):
        if lr.stop is None:
            raise ValueError(f"a learning-rate slice needs a stop value, got {lr}")
        if lr.start is None:
            out = np.full(n_groups, lr.stop / 10.0, dtype=np.float64)
            out[-1] = lr.stop
            return out
        return even_mults(float(lr.start), float(lr.stop), n_groups)
    arr = np.asarray(lr, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(n_groups, float(arr))
    if arr.shape != (n_groups,):
        raise ValueError(f"got {arr.size} learning rates for {n_groups} layer groups")
    return arr.copy()


def _per_param_group(opt: torch.optim.Optimizer, value) -> list[float]:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return [float(arr)] * len(opt.param_groups)
    return [float(arr[pg.get("layer_group", 0)]) for pg in opt.param_groups]


def set_hyper(opt: torch.optim.Optimizer, name: str, value) -> None:
    """Set hyper-parameter ``name`` (fastai naming, see module docstring) on every param
    group; ``value`` is a scalar or an array indexed by layer group."""
    vals = _per_param_group(opt, value)
    for pg, v in zip(opt.param_groups, vals):
        if name == "lr":
            pg["lr"] = v
        elif name == "mom":
            if "betas" in pg:
                pg["betas"] = (v, pg["betas"][1])
            elif "momentum" in pg:
                pg["momentum"] = v
        elif name == "sqr_mom":
            if "betas" in pg:
                pg["betas"] = (pg["betas"][0], v)
            elif "alpha" in pg:
                pg["alpha"] = v
        elif name == "wd":
            if pg.get("takes_wd", True):
                pg["weight_decay"] = v
        elif name == "eps":
            pg["eps"] = v
        else:
            raise KeyError(f"unknown hyper-parameter {name!r}; expected lr, mom, sqr_mom, wd or eps")


def get_hyper(opt: torch.optim.Optimizer, name: str) -> list[float]:
    """Value of ``name`` for each layer group (the first param group of each)."""
    out: dict[int, float] = {}
    for pg in opt.param_groups:
        lg = pg.get("layer_group", 0)
        if lg in out:
            continue
        if name == "lr":
            v = pg["lr"]
        elif name == "mom":
            v = pg["betas"][0] if "betas" in pg else pg.get("momentum", 0.0)
        elif name == "sqr_mom":
            v = pg["betas"][1] if "betas" in pg else pg.get("alpha", 0.0)
        elif name == "wd":
            v = pg["weight_decay"]
        else:
            v = pg[name]
        out[lg] = float(v)
    return [out[k] for k in sorted(out)]


def adamw(
    betas: tuple[float, float] = (0.9, 0.99), eps: float = 1e-5, foreach: bool | None = None, fused: bool | str | None = "auto"
) -> OptFactory:
    """AdamW factory with fastai's defaults (``mom=0.9``, ``sqr_mom=0.99``, ``eps=1e-5``,
    decoupled weight decay). ``fused='auto'`` uses the fused kernel when every parameter is
    on a CUDA device, the multi-tensor (foreach) kernel otherwise."""

    def make(param_groups: list[dict]) -> torch.optim.Optimizer:
        use_fused = fused
        if fused == "auto":
            use_fused = all(p.is_cuda for g in param_groups for p in g["params"]) or None
        kw = {"foreach": foreach} if not use_fused else {"fused": True}
        return torch.optim.AdamW(param_groups, lr=1e-3, betas=betas, eps=eps, **kw)

    return make


def sgd(momentum: float = 0.9, nesterov: bool = False) -> OptFactory:
    """SGD with momentum factory (the study's optimizer); weight decay is L2 in torch's SGD."""

    def make(param_groups: list[dict]) -> torch.optim.Optimizer:
        return torch.optim.SGD(param_groups, lr=1e-3, momentum=momentum, nesterov=nesterov)

    return make


def bn_param_ids(model: nn.Module) -> set[int]:
    """Ids of the parameters of normalisation layers (kept trainable by ``train_bn``)."""
    return _bn_ids(model)
