"""Checkpoints that let a run continue exactly where it stopped.

:class:`Checkpoint` writes, after every epoch (or every ``every`` epochs), one file with the
model and optimizer state, the epoch, the state of every callback that has one (Recorder
history, early stopping, balancing weights...), every random generator (Python, NumPy,
torch CPU and CUDA), the loaders' positions (epoch counters, shuffling generators, sampler
weights) and the augmentation generators. The write is atomic (temporary file, fsync,
rename): a kill at any moment leaves the previous checkpoint intact.

``learn.fit_sgdr(..., resume=path)`` (and every other fit method) restores all of it and
continues: on the CPU, an interrupted and resumed run ends with bit-identical weights and
the same Recorder history as an uninterrupted run with the same seed.
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dermlearn.callback import Callback
from dermlearn.distributed import is_main_process
from dermlearn.io import atomic_torch_save, safe_torch_load
from dermlearn.transforms.step import RandomStep

__all__ = ["FORMAT", "Checkpoint", "capture_state", "load_checkpoint", "restore_state"]

FORMAT = "dermlearn-checkpoint"


def _rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    st: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict[str, Any]) -> None:
    py = st["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = st["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _loaders(learn) -> dict[str, Any]:
    return {"train": learn.dls.train, "valid": learn.dls.valid}


def _loader_state(dl) -> dict[str, Any]:
    st: dict[str, Any] = {}
    if hasattr(dl, "state_dict"):
        st["loader"] = dl.state_dict()
    gen = getattr(dl, "generator", None)
    if isinstance(gen, torch.Generator):
        st["generator"] = gen.get_state()
    sampler = getattr(dl, "sampler", None)
    if hasattr(sampler, "state_dict"):
        st["sampler"] = sampler.state_dict()
    sgen = getattr(sampler, "generator", None)
    if isinstance(sgen, torch.Generator) and sgen is not gen:
        st["sampler_generator"] = sgen.get_state()
    return st


def _set_loader_state(dl, st: dict[str, Any]) -> None:
    if "loader" in st:
        dl.load_state_dict(st["loader"])
    if "generator" in st:
        dl.generator.set_state(st["generator"])
    if "sampler" in st:
        dl.sampler.load_state_dict(st["sampler"])
    if "sampler_generator" in st:
        dl.sampler.generator.set_state(st["sampler_generator"])


def _random_steps(learn) -> list[RandomStep]:
    """The pipeline steps whose generators a checkpoint keeps, in pipeline order."""
    return [t for t in [*learn.dls.train_tfms, *learn.dls.batch_tfms] if isinstance(t, RandomStep)]


def capture_state(learn) -> dict[str, Any]:
    """Everything needed to continue ``learn``'s current fit after the epoch just finished."""
    tfm_gens = [t.generator.get_state() for t in _random_steps(learn)]
    return {
        "format": FORMAT,
        "epoch": int(learn.epoch),
        "n_epoch": int(learn.n_epoch),
        "model": {k: v.detach().cpu().clone() for k, v in learn.model.state_dict().items()},
        "opt": learn.opt.state_dict(),
        "frozen_to": int(learn._frozen_to),
        "cbs": {cb.name: cb.state_dict() for cb in learn.cbs if type(cb).state_dict is not Callback.state_dict},
        "rng": _rng_state(),
        "loaders": {k: _loader_state(dl) for k, dl in _loaders(learn).items() if dl is not None},
        "tfm_generators": tfm_gens,
    }


def restore_state(learn, state: dict[str, Any], path: str | os.PathLike = "checkpoint") -> None:
    """Put back what :func:`capture_state` saved (model, optimizer, callbacks, RNGs, loaders)."""
    learn.model.load_state_dict(state["model"])
    if learn.opt is None:
        learn.create_opt()
    learn.opt.load_state_dict(state["opt"])
    learn.freeze_to(state.get("frozen_to", 0))
    names = {cb.name: cb for cb in learn.cbs}
    for name, st in state["cbs"].items():
        if name in names:
            names[name].load_state_dict(st)
        else:
            warnings.warn(f"{path}: the checkpoint has state for a callback {name!r} this learner does not have", stacklevel=2)
    _set_rng_state(state["rng"])
    for k, dl in _loaders(learn).items():
        if dl is not None and k in state["loaders"]:
            _set_loader_state(dl, state["loaders"][k])
    for t, st in zip(_random_steps(learn), state["tfm_generators"]):
        t.generator.set_state(st)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint (weights-only; a damaged file is a clear error)."""
    state = safe_torch_load(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a dermlearn checkpoint (written by the Checkpoint callback)")
    return state


class Checkpoint(Callback):
    """Write a resumable checkpoint after every ``every`` epochs (and after the last).

    Args:
        path: The checkpoint file (one file, replaced atomically each time).
        every: Epoch interval.

    Runs after the Recorder and the trackers have updated their state for the epoch
    (order 70). When early stopping ends a fit, its last epoch is not checkpointed: there
    is nothing to resume.
    """

    order = 70

    def __init__(self, path: str | os.PathLike = "checkpoint.pth", every: int = 1) -> None:
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.path, self.every = Path(path), every

    def after_epoch(self) -> None:
        learn = self.learn
        if (learn.epoch + 1) % self.every == 0 or learn.epoch + 1 == learn.n_epoch:
            if is_main_process():
                for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
                    stale.unlink(missing_ok=True)  # left by a process killed mid-write
                atomic_torch_save(capture_state(learn), self.path)

