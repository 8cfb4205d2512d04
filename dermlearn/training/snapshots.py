"""``SnapshotEnsemble``: keep the weights at the end of each SGDR cycle and predict with
their mean (Huang et al., "Snapshot Ensembles: Train 1, get M for free", ICLR 2017).

Each SGDR cycle anneals its learning rate to (near) zero before the warm restart, so the
weights at a cycle's end are a finished model, and models from different cycles err on
different images: the mean of their probabilities is often better than any one of them,
at no extra training cost. The callback copies the weights (to the CPU) after the epochs it
is given, :meth:`SnapshotEnsemble.cycle_ends` gives those of an SGDR schedule, and
:meth:`SnapshotEnsemble.get_preds` predicts with the mean of the last ``k`` snapshots,
optionally each with test-time augmentation, leaving the learner's own weights as they were.

    ens = SnapshotEnsemble(SnapshotEnsemble.cycle_ends(3, 1))  # after epochs 0, 2 and 6
    learn.fit_sgdr(3, 1, cbs=[ens])
    probs, targets = ens.get_preds(learn, last=2)  # the last two cycles' models, averaged
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from dermlearn.callback import Callback
from dermlearn.inference.tta import tta

__all__ = ["SnapshotEnsemble"]


class SnapshotEnsemble(Callback):
    """Copies of the model's weights after chosen epochs, for a snapshot ensemble.

    Args:
        epochs: The epochs (0-based, as ``learn.epoch`` counts them within a fit) after
            which the weights are kept, e.g. :meth:`cycle_ends` of the SGDR schedule. None:
            set :attr:`epochs` before the fit (for code that plans the schedule later).

    Attributes:
        epochs: The sorted epochs to keep (None until set).
        snapshots: ``[(epoch, state_dict)]`` in the order they were taken; every tensor is a
            CPU copy, never a view of the live weights. Emptied at the start of each fit.

    Raises:
        ValueError: ``epochs`` empty or holding a negative epoch; at the start of a fit,
            ``epochs`` still None.
    """

    order = 56  # after the Recorder (50) and progress (55), before trackers that may stop the fit (60-62)

    def __init__(self, epochs: Iterable[int] | None = None) -> None:
        super().__init__()
        self.epochs: list[int] | None = None if epochs is None else self.check_epochs(epochs)
        self.snapshots: list[tuple[int, dict[str, Tensor]]] = []

    @staticmethod
    def check_epochs(epochs: Iterable[int]) -> list[int]:
        """``epochs`` sorted, without repeats. Raises ValueError when empty or negative."""
        given = list(epochs)
        out = sorted({int(e) for e in given})
        if not out or out[0] < 0:
            raise ValueError(f"epochs must be one or more epoch indices >= 0, got {given!r}")
        return out

    @staticmethod
    def cycle_ends(n_cycles: int, cycle_len: int, cycle_mult: int = 2) -> list[int]:
        """The epochs (0-based) that end the cycles of ``fit_sgdr(n_cycles, cycle_len,
        cycle_mult=cycle_mult)``: cycle ``i`` lasts ``cycle_len * cycle_mult**i`` epochs, so
        ``(3, 1, 2)`` gives ``[0, 2, 6]`` and ``(3, 2, 1)`` gives ``[1, 3, 5]``.

        Raises:
            ValueError: ``n_cycles`` or ``cycle_len`` below 1, or ``cycle_mult`` below 1.
        """
        if n_cycles < 1 or cycle_len < 1 or cycle_mult < 1:
            raise ValueError(f"n_cycles, cycle_len and cycle_mult must be >= 1, got {n_cycles}, {cycle_len}, {cycle_mult}")
        ends, total = [], 0
        for i in range(n_cycles):
            total += cycle_len * cycle_mult**i
            ends.append(total - 1)
        return ends

    def before_fit(self) -> None:
        if self.epochs is None:
            raise ValueError("SnapshotEnsemble: set epochs (e.g. SnapshotEnsemble.cycle_ends(...)) before the fit")
        self.epochs = self.check_epochs(self.epochs)
        self.snapshots = []

    def after_epoch(self) -> None:
        if self.learn.epoch in self.epochs:
            state = {k: v.detach().to("cpu", copy=True) for k, v in self.learn.model.state_dict().items()}
            self.snapshots.append((self.learn.epoch, state))

    def get_preds(self, learn, dl: Iterable | None = None, last: int | None = None, n_tta: int = 0,
                  beta: float = 0.25, per_snapshot: bool = False) -> tuple[Tensor, Tensor]:  # fmt: skip
        """The mean probabilities of the last ``last`` snapshots on ``dl``.

        Each snapshot's weights are loaded into ``learn.model`` in turn; afterwards the
        model holds exactly the weights it held before the call (a failure included).

        Args:
            learn: The learner whose model the snapshots were taken from.
            dl: Loader to predict (default: the validation loader).
            last: How many of the latest snapshots to average (default: all of them).
            n_tta: 0: one plain pass per snapshot; ``n >= 1``: :func:`dermlearn.inference.tta`
                with ``n`` augmented passes and ``beta`` per snapshot.
            beta: Weight of the plain pass in test-time augmentation, in [0, 1].
            per_snapshot: Return each snapshot's probabilities, ``(last, N, C)`` oldest
            first, instead of their mean (to score several ``last`` from one pass each).

        Returns:
            ``(probs, targets)`` on the CPU, ``(N, C)`` (each row sums to 1 when the
            activation's do) and ``(N,)``.

        Raises:
            ValueError: No snapshot was taken, ``last`` outside 1..len(snapshots), or
                ``n_tta`` negative.
        """
        if not self.snapshots:
            raise ValueError(f"no snapshot was taken: none of epochs {self.epochs} was trained")
        last = len(self.snapshots) if last is None else last
        if not 1 <= last <= len(self.snapshots):
            raise ValueError(f"last must be in 1..{len(self.snapshots)} (the snapshots taken), got {last}")
        if n_tta < 0:
            raise ValueError(f"n_tta must be >= 0, got {n_tta}")
        model = learn.model
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        each, targets = [], None
        try:
            for _, state in self.snapshots[-last:]:
                model.load_state_dict(state)
                probs, targets = tta(learn, dl, n_tta, beta) if n_tta else learn.get_preds(dl)
                each.append(probs)
        finally:
            model.load_state_dict(own)
        stacked = torch.stack(each)
        return (stacked if per_snapshot else stacked.double().mean(0).float()), targets
