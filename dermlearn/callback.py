"""Callback base class, the ordered list of training-loop events, and cancel exceptions.

The event names and the cancel semantics follow fastai, so code and habits carry over:

* Each stage ``X`` of the loop (``fit``, ``epoch``, ``train``, ``validate``, ``batch``,
  ``backward``, ``step``) is wrapped as ``before_X`` -> body -> ``after_X``.
* Raising ``CancelXException`` inside that stage skips the rest of its body, calls
  ``after_cancel_X`` and then still calls ``after_X``; the loop carries on with the next
  stage (the next batch, the next epoch, ...). ``CancelFitException`` ends ``fit``.

Callbacks are plain classes with typed methods named after the events; a callback only
pays for the events it defines (the Learner dispatches to those alone).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "EVENTS",
    "Callback",
    "CancelBackwardException",
    "CancelBatchException",
    "CancelEpochException",
    "CancelFitException",
    "CancelStepException",
    "CancelTrainException",
    "CancelValidException",
]

#: Every event in the order the loop can emit it (``after_cancel_*`` only on cancel).
EVENTS: tuple[str, ...] = (
    "before_fit",
    "before_epoch",
    "before_train",
    "before_batch",
    "after_pred",
    "after_loss",
    "before_backward",
    "after_cancel_backward",
    "after_backward",
    "before_step",
    "after_cancel_step",
    "after_step",
    "after_cancel_batch",
    "after_batch",
    "after_cancel_train",
    "after_train",
    "before_validate",
    "after_cancel_validate",
    "after_validate",
    "after_cancel_epoch",
    "after_epoch",
    "after_cancel_fit",
    "after_fit",
)


class CancelFitException(Exception):
    """Stop training; ``after_cancel_fit`` then ``after_fit`` still run."""


class CancelEpochException(Exception):
    """Skip the rest of this epoch (training and validation); go to the next epoch."""


class CancelTrainException(Exception):
    """Skip the rest of this epoch's training phase; validation still runs."""


class CancelValidException(Exception):
    """Skip the rest of this epoch's validation phase."""


class CancelBatchException(Exception):
    """Skip the rest of this batch (e.g. no backward or step); go to the next batch."""


class CancelBackwardException(Exception):
    """Skip the backward pass of this batch."""


class CancelStepException(Exception):
    """Skip the optimizer step of this batch."""


class Callback:
    """Base class for callbacks.

    Subclasses define any of the methods named in :data:`EVENTS`; each takes no argument
    and reads or changes the loop's state through ``self.learn`` (set when the callback is
    added to a :class:`~dermlearn.training.learner.Learner`).

    Attributes:
        order: Callbacks run in ascending ``order`` for every event (ties keep insertion
            order). Built-ins: schedulers 0 (default), LR finder 1, Recorder 50, progress
            table 55, trackers (saving) 60, early stopping 61.
        run_train: Run during training batches.
        run_valid: Run during validation batches.
    """

    order: int = 0
    run_train: bool = True
    run_valid: bool = True

    def __init__(self) -> None:
        self.learn: Any = None  # the Learner, set by Learner.add_cb (not imported: it imports this module)

    @property
    def name(self) -> str:
        """Snake-case name of the class without a ``Callback`` suffix (``EarlyStopping`` ->
        ``early_stopping``); the Learner exposes the callback under this attribute."""
        cls = type(self).__name__
        if cls.endswith("Callback") and cls != "Callback":
            cls = cls[: -len("Callback")]
        out = []
        for i, ch in enumerate(cls):
            if ch.isupper() and i > 0 and not cls[i - 1].isupper():
                out.append("_")
            out.append(ch.lower())
        return "".join(out)

    def release(self) -> None:
        """Undo what the callback set up mid-loop that outlives the loop (an autocast
        context entered in ``before_batch``, say).

        Not an event: the Learner calls it on every callback when ``fit``, ``validate`` or
        ``get_preds`` returns *or raises*. fastai's events do not run after an exception
        (a shape error in the forward pass ends the loop at once); this is where a callback
        makes sure the error leaves no global state behind. The default does nothing.
        """

    def state_dict(self) -> dict[str, Any]:
        """State to save in a checkpoint (override in stateful callbacks)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(order={self.order})"
