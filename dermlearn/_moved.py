"""Old import paths of modules and names that moved when the package was laid out in
subpackages (0.2), kept working for one release with a :class:`DeprecationWarning`.

``import dermlearn.learner`` (or ``from dermlearn.schedule import SchedCos``) still works: a
finder on ``sys.meta_path`` answers only for the module names below, after the normal import
found no such file, and builds a module holding the public names of the modules that took
over. The names themselves are the same objects. Names that moved out of a package that is
still there (``dermlearn.transforms.two_pass_predict``) are answered by that package's
``__getattr__`` through :func:`moved_attribute`. Nothing here imports a dermlearn module
until an old path is used.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Any

__all__ = ["MOVED_MODULES", "MOVED_NAMES", "install", "moved_attribute"]

REMOVED_IN = "0.3"

# old module -> the modules that now hold its public names
MOVED_MODULES: dict[str, tuple[str, ...]] = {
    "dermlearn.bootstrap": ("dermlearn.evaluation.bootstrap",),
    "dermlearn.metrics": ("dermlearn.evaluation.metrics",),
    "dermlearn.plots": ("dermlearn.evaluation.plots",),
    "dermlearn.calibration": ("dermlearn.inference.calibration",),
    "dermlearn.cli_data": ("dermlearn.cli.data_args",),
    "dermlearn.dataloaders": ("dermlearn.data.dataloaders", "dermlearn.transforms.normalize"),
    "dermlearn.datasets": ("dermlearn.data.synthetic",),
    "dermlearn.domain": ("dermlearn.data.domain",),
    "dermlearn.export": ("dermlearn.modelfile.export", "dermlearn.training.load_learner"),
    "dermlearn.onnx_export": ("dermlearn.modelfile.onnx",),
    "dermlearn.fastai_bridge": ("dermlearn.integrations.fastai",),
    "dermlearn.checkpoint": ("dermlearn.training.checkpoint",),
    "dermlearn.guard": ("dermlearn.training.guard",),
    "dermlearn.learner": ("dermlearn.training.learner",),
    "dermlearn.lr_finder": ("dermlearn.training.lr_finder",),
    "dermlearn.optim": ("dermlearn.training.optim",),
    "dermlearn.precision": ("dermlearn.training.precision",),
    "dermlearn.progress": ("dermlearn.training.progress",),
    "dermlearn.recipes": ("dermlearn.training.recipe",),
    "dermlearn.recorder": ("dermlearn.training.recorder",),
    "dermlearn.schedule": ("dermlearn.training.schedule", "dermlearn.training.optim"),
    "dermlearn.time_budget": ("dermlearn.training.time_budget",),
    "dermlearn.tracker": ("dermlearn.training.tracker",),
    "dermlearn.data.augment": ("dermlearn.transforms.augment", "dermlearn.transforms.resize"),
    "dermlearn.interpret.guard": ("dermlearn.interpret.model_guard",),
    "dermlearn.transforms.fov": (
        "dermlearn.transforms.vignette", "dermlearn.transforms.saliency", "dermlearn.inference.two_pass",
    ),
}  # fmt: skip

# (package, name) -> the module that now defines the name
MOVED_NAMES: dict[tuple[str, str], str] = {
    ("dermlearn.transforms", "two_pass_predict"): "dermlearn.inference.two_pass",
}


def _warn(old: str, new: str, stacklevel: int) -> None:
    warnings.warn(f"{old} moved to {new}; the old path goes in dermlearn {REMOVED_IN}", DeprecationWarning, stacklevel=stacklevel + 1)


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old module names of :data:`MOVED_MODULES` (and nothing else)."""

    def find_spec(self, fullname: str, path: Any = None, target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # a plain module

    def exec_module(self, module: ModuleType) -> None:
        new = MOVED_MODULES[module.__name__]
        _warn(module.__name__, " and ".join(new), stacklevel=2)
        names: list[str] = []
        for target in map(importlib.import_module, new):
            for name in getattr(target, "__all__", ()):
                if name not in module.__dict__:
                    module.__dict__[name] = getattr(target, name)
                    names.append(name)
        module.__all__ = sorted(names)
        module.__doc__ = f"Moved to {' and '.join(new)} (this path goes in dermlearn {REMOVED_IN})."


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once); the package's ``__init__`` calls it."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())


def moved_attribute(package: str, name: str) -> Any:
    """``package.name`` for a name that moved out of ``package``, with a warning; for a
    package's module-level ``__getattr__``.

    Raises:
        AttributeError: ``name`` was never in ``package``.
    """
    new = MOVED_NAMES.get((package, name))
    if new is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    _warn(f"{package}.{name}", f"{new}.{name}", stacklevel=3)  # the caller of the package's __getattr__
    return getattr(importlib.import_module(new), name)
