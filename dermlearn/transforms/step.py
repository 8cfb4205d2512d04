"""What a pipeline step is: the one contract that model files, ONNX export, the command
line's ``--correct`` and checkpoints read.

A step is a :class:`torch.nn.Module` from a batch of images ``(B, 3, H, W)``, uint8 in
[0, 255] or float in [0, 1], to a batch. A subclass says what it is by class attributes:

* ``export_args``: the constructor arguments a model file keeps, read back from the step's
  attributes of the same names (tensors are written as lists); the model file rebuilds the
  step as ``cls(**args)``. ``None`` (the default) means the step is not kept in model files:
  augmentation and other training-only steps.
* ``export_name``: its name in model files (default: the class name). A subclass that
  declares neither ``export_args`` nor ``export_name`` is kept, and rebuilt, as its parent.
* ``graph_exporters``: the ONNX exporters that can trace it into the inference graph
  (``"dynamo"``, ``"torchscript"``); empty when it runs outside the graph (OpenCV, host code).
* ``cli_name``: the name ``dermlearn train --correct`` offers it by; ``None``: not offered.

:class:`RandomStep` adds what every random step shares: a CPU ``torch.Generator`` seeded by
``seed`` (the same seed gives the same parameters on every device), ``sample(b)`` to draw the
parameters of ``b`` images, ``apply_params(x, params)`` to replay them, and ``reset`` to
restart the stream; checkpoints save and restore that generator.

Defining a subclass registers it: adding a correction is one new module with its class (and
its import in :mod:`dermlearn.transforms`), nothing else to edit.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

__all__ = ["RandomStep", "Step", "cli_steps", "exportable_steps", "step_from_spec"]

_REGISTRY: dict[str, type[Step]] = {}  # export_name -> class, for steps kept in model files


class Step(nn.Module):
    """Base of every pipeline step; see the module docstring for the class attributes."""

    export_args: ClassVar[tuple[str, ...] | None] = None
    export_name: ClassVar[str | None] = None
    graph_exporters: ClassVar[tuple[str, ...]] = ()
    cli_name: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "export_args" not in vars(cls) and "export_name" not in vars(cls):
            return  # a subclass that declares neither is exported as its parent (e.g. one that counts calls)
        if "export_name" not in vars(cls):
            cls.export_name = cls.__name__
        if cls.export_args is None:
            return
        other = _REGISTRY.get(cls.export_name)
        if other is not None and other.__qualname__ != cls.__qualname__:
            raise TypeError(f"two pipeline steps are exported as {cls.export_name!r}: "
                            f"{other.__module__}.{other.__qualname__} and {cls.__module__}.{cls.__qualname__}")  # fmt: skip
        _REGISTRY[cls.export_name] = cls

    def export_spec(self) -> dict[str, Any]:
        """``{"name": export_name, <arg>: value, ...}``, JSON-serialisable.

        Raises:
            TypeError: the step is not kept in model files (``export_args`` is None).
        """
        if self.export_args is None:
            raise TypeError(f"cannot export the preprocessing step {type(self).__name__}: it is not kept in model "
                            f"files (steps that are: {', '.join(sorted(_REGISTRY))})")  # fmt: skip
        spec: dict[str, Any] = {"name": self.export_name}
        for k in self.export_args:
            v = getattr(self, k)
            spec[k] = v.flatten().tolist() if isinstance(v, Tensor) else list(v) if isinstance(v, tuple) else v
        return spec


class RandomStep(Step):
    """A step that draws parameters per image from its own generator.

    Subclasses implement ``sample(b) -> params`` (on the CPU, from :attr:`generator`) and
    ``apply_params(x, params) -> x``; calling the step applies freshly sampled parameters.

    Args:
        seed: Seed of :attr:`generator`.
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, b: int) -> Any:
        raise NotImplementedError

    def apply_params(self, x: Tensor, params: Any) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.apply_params(x, self.sample(x.shape[0]))

    def reset(self, seed: int | None = None) -> None:
        """Restart the parameter stream (from ``seed``, default the constructor's)."""
        self.generator.manual_seed(self.seed if seed is None else seed)


def step_from_spec(spec: dict[str, Any]) -> Step:
    """Rebuild a step from :meth:`Step.export_spec`'s dictionary.

    Raises:
        ValueError: no step is exported under that name, or an argument is missing.
    """
    name = spec.get("name")
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ValueError(f"cannot rebuild preprocessing step {name!r}: known steps are {', '.join(sorted(_REGISTRY))}")
    missing = [k for k in cls.export_args if k not in spec]
    if missing:
        raise ValueError(f"preprocessing step {name!r} lacks {', '.join(missing)}")
    return cls(**{k: spec[k] for k in cls.export_args})


def exportable_steps() -> dict[str, type[Step]]:
    """Export name -> class of every step a model file can hold."""
    return dict(_REGISTRY)


def cli_steps() -> dict[str, type[Step]]:
    """``--correct`` name -> class of every step the command line offers, in registration order."""
    return {cls.cli_name: cls for cls in _REGISTRY.values() if cls.cli_name is not None}
