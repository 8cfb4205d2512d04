"""Count the tensor reads back to the host that dermlearn's own code makes inside a training
batch (between ``before_batch`` and ``after_batch``).

A read belongs to dermlearn when the calling frame's file lies inside the installed
package's directory (``dermlearn.__file__``'s parent, symlinks resolved); a file name that
merely contains "dermlearn" (a virtual environment called ``dermlearn-env``, say) is not
dermlearn's. Importable by the tests and runnable in a child process::

    python -m tests.host_reads    # prints the count for a one-cycle fit of the tiny learner
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import torch

import dermlearn as dl

__all__ = ["HOST_READS", "count_host_reads", "injected_read", "is_dermlearn_file", "tiny_fit"]

HOST_READS = ("item", "tolist", "cpu", "numpy", "__float__", "__bool__")


@lru_cache(maxsize=4096)
def is_dermlearn_file(filename: str) -> bool:
    """Whether ``filename`` (a code object's ``co_filename``) is a module of the dermlearn
    package: its resolved path lies under the package's resolved directory."""
    if filename.startswith("<"):  # <string>, <frozen ...>: no file
        return False
    package = Path(dl.__file__).resolve().parent
    return Path(filename).resolve().is_relative_to(package)


def count_host_reads(fit: Callable[[list[dl.Callback]], None]) -> int:
    """Run ``fit(cbs)`` with ``Tensor``'s host-read methods spied on, and return how many
    calls came from dermlearn's code while a training batch ran. ``fit`` must pass ``cbs``
    to the Learner (they mark the batch window). The spies are removed afterwards."""
    state = {"in_batch": False, "reads": 0}

    class Window(dl.Callback):
        order = -100
        run_valid = False

        def before_batch(self) -> None:
            state["in_batch"] = True

    class WindowEnd(dl.Callback):
        order = 100
        run_valid = False

        def after_batch(self) -> None:
            state["in_batch"] = False

    def spy(orig: Callable) -> Callable:
        def f(self, *a, **k):
            if state["in_batch"] and is_dermlearn_file(sys._getframe(1).f_code.co_filename):
                state["reads"] += 1
            return orig(self, *a, **k)

        return f

    originals = {name: getattr(torch.Tensor, name) for name in HOST_READS}
    try:
        for name, orig in originals.items():
            setattr(torch.Tensor, name, spy(orig))
        fit([Window(), WindowEnd()])
    finally:
        for name, orig in originals.items():
            setattr(torch.Tensor, name, orig)
    return state["reads"]


def injected_read() -> type[dl.Callback]:
    """A callback whose ``after_loss`` reads the loss back to the host, compiled as if it were
    written in dermlearn's ``learner.py``: a stand-in for a host read slipped into the loop."""
    src = "def after_loss(self):\n    self.learn.loss.item()\n"
    namespace: dict = {}
    exec(compile(src, str(Path(dl.__file__).resolve().parent / "learner.py"), "exec"), namespace)
    return type("InjectedRead", (dl.Callback,), {"after_loss": namespace["after_loss"], "run_valid": False})


def tiny_fit(extra: tuple[dl.Callback, ...] = ()) -> Callable[[list[dl.Callback]], None]:
    """A one-cycle fit of the tests' tiny learner (10 batches), with ``extra`` callbacks."""

    def fit(cbs: list[dl.Callback]) -> None:
        from tests.helpers import tiny_learner

        learn = tiny_learner(metrics=[dl.accuracy], cbs=[*cbs, *extra], progress=True)
        learn.fit_one_cycle(1, 1e-2)

    return fit


if __name__ == "__main__":
    print(f"torch from {torch.__file__}")
    print(f"host reads {count_host_reads(tiny_fit())}")
    print(f"host reads with one injected {count_host_reads(tiny_fit((injected_read()(),)))}")
