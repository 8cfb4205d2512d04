"""The Learner: a model, its data, a loss, an optimizer and callbacks, and the training loop.

The loop (print it with :meth:`Learner.show_training_loop`)::

    fit:      before_fit -> [epoch]* -> after_fit
    epoch:    before_epoch -> train -> validate -> after_epoch
    train:    before_train -> [batch]* -> after_train
    validate: before_validate -> [batch]* -> after_validate   (no_grad, model.eval())
    batch:    before_batch -> model(x) -> after_pred -> loss -> after_loss
              -> before_backward -> backward -> after_backward
              -> before_step -> opt.step() -> after_step -> zero_grad -> after_batch

``CancelXException`` raised inside stage X runs ``after_cancel_X`` then ``after_X`` and
moves on (see :mod:`dermlearn.callback`).

Nothing in the loop reads a value back to the host per batch: losses and predictions are
accumulated on the device and read once per epoch.
"""

from __future__ import annotations

import contextlib
import copy
import numbers
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from dermlearn.callback import (
    EVENTS,
    Callback,
    CancelBackwardException,
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    CancelStepException,
    CancelTrainException,
    CancelValidException,
)
from dermlearn.data.dataloaders import DataLoaders
from dermlearn.distributed import all_gather_cat, all_reduce_sum, init_from_env, is_main_process
from dermlearn.inference.calibration import calibrate
from dermlearn.inference.files import FilePredictions, predict_files
from dermlearn.inference.predict import input_size as _input_size
from dermlearn.inference.predict import load_item, out_of_domain, predict
from dermlearn.inference.tta import tta
from dermlearn.interpret.explain import Explanation, explain
from dermlearn.io import atomic_torch_save, safe_torch_load
from dermlearn.losses import CrossEntropy, activation_of, decodes_of
from dermlearn.modelfile.export import export_learner
from dermlearn.modelfile.pretrained import push_to_hub, save_pretrained

from .checkpoint import load_checkpoint, restore_state
from .guard import NonFiniteGuard
from .lr_finder import LRFindResult, lr_find
from .optim import (
    LearningRate,
    OptFactory,
    adamw,
    bn_param_ids,
    get_hyper,
    lr_per_group,
    make_param_groups,
    params_of,
    set_hyper,
)
from .progress import ProgressCallback
from .recorder import Recorder
from .schedule import ParamScheduler, flat_cos_scheds, one_cycle_scheds, sgdr_scheds

__all__ = ["GatherPreds", "Learner", "default_device"]

_INNER = {
    "before_batch", "after_pred", "after_loss", "before_backward", "after_cancel_backward", "after_backward",
    "before_step", "after_cancel_step", "after_step", "after_cancel_batch", "after_batch",
}  # fmt: skip


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def _model_splitter(model: nn.Module) -> list[list[nn.Parameter]]:
    """Layer groups declared by the model (``model.split_params()``), else one group."""
    if hasattr(model, "split_params"):
        return model.split_params()
    return [params_of(model)]


class GatherPreds(Callback):
    """Collect inputs, predictions, targets and per-item losses of a validation pass (on
    the device; moved to the CPU once at the end)."""

    order = 55
    run_train = False

    def __init__(self, with_input: bool = False, with_loss: bool = False) -> None:
        super().__init__()
        self.with_input, self.with_loss = with_input, with_loss

    def before_validate(self) -> None:
        self.inputs: list[Tensor] = []
        self.preds: list[Tensor] = []
        self.targets: list[Tensor] = []
        self.losses: list[Tensor] = []

    def after_pred(self) -> None:
        learn = self.learn
        self.preds.append(learn.pred.detach())
        if self.with_input:
            self.inputs.append(learn.xb.detach())
        if learn.yb is not None:
            self.targets.append(learn.yb.detach())
            if self.with_loss:
                self.losses.append(learn.per_item_loss(learn.pred, learn.yb).detach())

    def result(self) -> dict[str, Tensor | None]:
        def cat(xs: list[Tensor]) -> Tensor | None:
            return all_gather_cat(torch.cat(xs)).cpu() if xs else None

        return {"inputs": cat(self.inputs), "preds": cat(self.preds), "targets": cat(self.targets), "losses": cat(self.losses)}


class Learner:
    """Train and evaluate ``model`` on ``dls``.

    Args:
        dls: A :class:`DataLoaders`, or a ``(train, valid)`` pair of torch DataLoaders.
        model: Any ``nn.Module`` mapping a batch ``x`` to logits ``(B, C)``. Models from
            :func:`dermlearn.create_model` declare three layer groups.
        loss_func: Defaults to :class:`~dermlearn.losses.CrossEntropy`.
        opt_func: Factory ``param_groups -> Optimizer``; defaults to
            :func:`~dermlearn.training.optim.adamw` (fastai's Adam settings).
        lr: Default learning rate for :meth:`fit` (a float or a ``slice``).
        splitter: ``model -> list of parameter lists`` (layer groups). Defaults to
            ``model.split_params()`` when the model has it, else one group.
        cbs: Extra callbacks.
        metrics: Callables ``(preds, targets) -> Tensor`` computed on each validation pass.
        path: Folder for saved models (``path / model_dir``).
        model_dir: Subfolder of ``path`` for :meth:`save` / :meth:`load`.
        wd: Weight decay (not applied to normalisation layers and biases).
        train_bn: Keep normalisation layers trainable (and in train mode) in frozen groups.
        device: Where the model and batches live; CUDA when available by default.
        progress: ``True``: progress bars and a table row per epoch; ``"table"``: the
            table without the bars (logs, scripts); ``False``: neither.
        compile: Run the training forward pass through ``torch.compile`` (the first batches
            are slow while it compiles; ``learn.model`` stays the plain module, so saving,
            exporting and attribution are unchanged).
    """

    def __init__(
        self,
        dls: DataLoaders | Sequence[Iterable],
        model: nn.Module,
        loss_func: Callable[[Tensor, Tensor], Tensor] | None = None,
        opt_func: OptFactory | None = None,
        lr: LearningRate = 1e-3,
        splitter: Callable[[nn.Module], list[list[nn.Parameter]]] | None = None,
        cbs: Sequence[Callback] | None = None,
        metrics: Sequence[Callable] | Callable | None = None,
        path: str | Path = ".",
        model_dir: str = "models",
        wd: float = 0.01,
        train_bn: bool = True,
        device: str | torch.device | None = None,
        progress: bool | str = True,
        compile: bool = False,
    ) -> None:
        if progress not in (True, False, "table"):
            raise ValueError(f"progress must be True, False or 'table', got {progress!r}")
        self.dls = dls if isinstance(dls, DataLoaders) else DataLoaders(*dls)
        self.distributed = init_from_env()
        if device is None and self.distributed and torch.cuda.is_available():
            device = torch.device("cuda", torch.cuda.current_device())
        self.device = torch.device(device) if device is not None else default_device()
        self.model = model.to(self.device)
        self.dls.to(self.device)
        self.loss_func = loss_func if loss_func is not None else CrossEntropy()
        if isinstance(self.loss_func, nn.Module):
            self.loss_func.to(self.device)
        self.opt_func = opt_func if opt_func is not None else adamw()
        self.lr = lr
        self.splitter = splitter if splitter is not None else _model_splitter
        self.metrics = list(metrics) if isinstance(metrics, (list, tuple)) else ([metrics] if metrics else [])
        self.path, self.model_dir = Path(path), model_dir
        self.wd, self.train_bn = wd, train_bn
        self.opt: torch.optim.Optimizer | None = None
        self.training = False
        self.epoch, self.n_epoch, self.iter, self.n_iter = 0, 1, 0, 1
        self.xb: Tensor | None = None
        self.yb: Tensor | None = None
        self.pred: Tensor | None = None
        self.loss: Tensor | None = None
        self.cbs: list[Callback] = []
        self._dispatch: dict[bool, dict[str, list[Callable[[], None]]]] = {True: {}, False: {}}
        self._frozen_to = 0
        self.add_cbs([Recorder(), NonFiniteGuard()])
        if progress and is_main_process():
            self.add_cb(ProgressCallback(bar=progress is True))
        # each Learner gets its own copy of the callbacks the data needs: two Learners on one
        # DataLoaders (a model comparison, a throwaway probe) must not share one bound instance
        self.add_cbs(copy.deepcopy(cb, {id(cb.learn): None}) for cb in self.dls.cbs)
        self.add_cbs(cbs or [])
        self._augment_valid = False
        self._resume: tuple[dict, Any] | None = None
        self._ddp: nn.Module | None = None
        self.compile = compile
        self._compiled: nn.Module | None = None
        self._train_module: nn.Module = self.model
        self.temperature = 1.0  # set by calibrate(): logits are divided by it before the activation
        self.meta: dict[str, Any] = {}  # a model file's metadata, set by load_learner
        self.input_domain = None  # InputDomain of a loaded model file (dermlearn.data.domain): predict warns outside it
        self.lr_find_result: LRFindResult | None = None  # the last lr_find, which run loggers plot

    # ------------------------------------------------------------------ callbacks
    def add_cb(self, cb: Callback) -> Learner:
        """Add a callback (instance, or class to instantiate); it becomes ``learn.<name>``."""
        if isinstance(cb, type):
            cb = cb()
        if any(c is cb for c in self.cbs):
            return self
        cb.learn = self
        self.cbs.append(cb)
        setattr(self, cb.name, cb)
        self._build_dispatch()
        return self

    def add_cbs(self, cbs: Iterable[Callback]) -> Learner:
        for cb in cbs:
            self.add_cb(cb)
        return self

    def remove_cb(self, cb: Callback | type) -> Learner:
        """Remove a callback instance, or every callback of a class."""
        drop = [c for c in self.cbs if (c is cb or (isinstance(cb, type) and isinstance(c, cb)))]
        for c in drop:
            self.cbs.remove(c)
            if getattr(self, c.name, None) is c:
                delattr(self, c.name)
            c.learn = None
        self._build_dispatch()
        return self

    def remove_cbs(self, cbs: Iterable[Callback | type]) -> Learner:
        for cb in list(cbs):
            self.remove_cb(cb)
        return self

    @contextlib.contextmanager
    def added_cbs(self, cbs: Iterable[Callback] | None) -> Iterator[Learner]:
        """Add ``cbs`` for the duration of the block."""
        cbs = [c() if isinstance(c, type) else c for c in (cbs or [])]
        self.add_cbs(cbs)
        try:
            yield self
        finally:
            self.remove_cbs(cbs)

    @contextlib.contextmanager
    def removed_cbs(self, cbs: Iterable[Callback]) -> Iterator[Learner]:
        """Remove ``cbs`` for the duration of the block."""
        cbs = [c for c in cbs if c in self.cbs]
        self.remove_cbs(cbs)
        try:
            yield self
        finally:
            self.add_cbs(cbs)

    @contextlib.contextmanager
    def no_bar(self) -> Iterator[Learner]:
        """No progress bar or epoch table inside the block."""
        with self.removed_cbs([c for c in self.cbs if isinstance(c, ProgressCallback)]):
            yield self

    def _sorted_cbs(self) -> list[Callback]:
        return sorted(self.cbs, key=lambda c: c.order)  # stable: ties keep insertion order

    def _build_dispatch(self) -> None:
        for training in (True, False):
            table: dict[str, list[Callable[[], None]]] = {}
            for ev in EVENTS:
                fs = []
                for cb in self._sorted_cbs():
                    if ev in _INNER and not (cb.run_train if training else cb.run_valid):
                        continue
                    f = getattr(cb, ev, None)
                    if f is not None:
                        fs.append(f)
                if fs:
                    table[ev] = fs
            self._dispatch[training] = table

    def __call__(self, event: str) -> None:
        """Run ``event`` on every callback that defines it, in order."""
        for f in self._dispatch[self.training].get(event, ()):
            f()

    @contextlib.contextmanager
    def _releasing(self) -> Iterator[None]:
        """Call every callback's :meth:`~dermlearn.callback.Callback.release` when the loop
        inside returns or raises."""
        try:
            yield
        finally:
            for cb in list(self.cbs):
                cb.release()

    @contextlib.contextmanager
    def _mode_kept(self) -> Iterator[None]:
        """Put the model back in the train/eval mode it had, however the block ends (an
        evaluation pass switches it to eval)."""
        was_training = self.model.training
        try:
            yield
        finally:
            self.model.train(was_training)

    def _with_events(self, f: Callable[[], None], name: str, ex: type[Exception], final: Callable[[], None] | None = None) -> None:
        try:
            self(f"before_{name}")
            f()
        except ex:
            self(f"after_cancel_{name}")
        self(f"after_{name}")
        if final is not None:
            final()

    def show_training_loop(self) -> str:
        """Print (and return) the loop's events with the callbacks that run on each."""
        indent = {
            "before_fit": 0, "before_epoch": 1, "before_train": 2, "before_batch": 3, "after_pred": 3,
            "after_loss": 3, "before_backward": 3, "after_cancel_backward": 3, "after_backward": 3,
            "before_step": 3, "after_cancel_step": 3, "after_step": 3, "after_cancel_batch": 3,
            "after_batch": 3, "after_cancel_train": 2, "after_train": 2, "before_validate": 2,
            "after_cancel_validate": 2, "after_validate": 2, "after_cancel_epoch": 1, "after_epoch": 1,
            "after_cancel_fit": 0, "after_fit": 0,
        }  # fmt: skip
        lines = ["Start Fit"]
        for ev in EVENTS:
            names = [type(cb).__name__ for cb in self._sorted_cbs() if getattr(cb, ev, None) is not None]
            lines.append("   " * indent[ev] + f"- {ev:<22}: {names}")
        lines.append("End Fit")
        out = "\n".join(lines)
        print(out)
        return out

    # ------------------------------------------------------------------ optimizer
    def layer_groups(self) -> list[list[nn.Parameter]]:
        """The model's parameters split into layer groups by ``splitter``."""
        return self.splitter(self.model)

    @property
    def n_groups(self) -> int:
        """Number of layer groups (read from the optimizer once it exists: the splitter walks
        every parameter, too slow for a per-batch call)."""
        if self.opt is not None:
            return max(pg.get("layer_group", 0) for pg in self.opt.param_groups) + 1
        return len(self.layer_groups())

    def create_opt(self) -> None:
        """(Re)create the optimizer: one pair of param groups per layer group."""
        groups = make_param_groups(self.model, self.layer_groups(), self.wd)
        self.opt = self.opt_func(groups)
        self.set_hyper("lr", self.lr)
        self._apply_freeze()

    def set_hyper(self, name: str, value: Any) -> None:
        """Set an optimizer hyper-parameter for all layer groups (a float, a slice for
        ``lr``, or one value per group)."""
        if self.opt is None:
            self.create_opt()
        if name == "lr":
            value = lr_per_group(value, self.n_groups)
        set_hyper(self.opt, name, value)

    def get_hyper(self, name: str) -> list[float]:
        """Current value of ``name`` for each layer group."""
        if self.opt is None:
            self.create_opt()
        return get_hyper(self.opt, name)

    # ------------------------------------------------------------------ freezing
    def freeze_to(self, n: int) -> None:
        """Train only layer groups ``n`` and later (negative ``n`` counts from the end).
        Normalisation layers of frozen groups stay trainable when ``train_bn``."""
        groups = self.layer_groups()
        n = n % len(groups) if n < 0 else min(n, len(groups))
        self._frozen_to = n
        self._apply_freeze(groups)

    def _apply_freeze(self, groups: list[list[nn.Parameter]] | None = None) -> None:
        groups = groups if groups is not None else self.layer_groups()
        bn = bn_param_ids(self.model) if self.train_bn else set()
        for i, g in enumerate(groups):
            for p in g:
                p.requires_grad_(i >= self._frozen_to or id(p) in bn)

    def freeze(self) -> None:
        """Train only the last layer group (the head)."""
        self.freeze_to(-1)

    def unfreeze(self) -> None:
        """Train every layer group."""
        self.freeze_to(0)

    def _set_train_mode(self) -> None:
        self.model.train()
        if not self.train_bn and self._frozen_to > 0:
            frozen = {id(p) for g in self.layer_groups()[: self._frozen_to] for p in g}
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and any(id(p) in frozen for p in m.parameters()):
                    m.eval()

    # ------------------------------------------------------------------ the loop
    def _to_device(self, b: Any) -> tuple[Tensor, Tensor | None]:
        if not isinstance(b, (list, tuple)):
            b = (b,)
        nb = self.device.type == "cuda"
        x = b[0].to(self.device, non_blocking=nb)
        y = b[1].to(self.device, non_blocking=nb) if len(b) > 1 else None
        return x, y

    def _do_one_batch(self) -> None:
        self.pred = (self._train_module if self.training else self.model)(self.xb)
        self("after_pred")
        if self.yb is None:
            return
        loss_grad = self.loss_func(self.pred, self.yb)
        self.loss_grad = loss_grad
        self.loss = loss_grad.detach()
        self("after_loss")
        if not self.training:
            return
        self._with_events(self._backward, "backward", CancelBackwardException)
        self._with_events(self._step, "step", CancelStepException)
        self.opt.zero_grad(set_to_none=True)

    def _backward(self) -> None:
        self.loss_grad.backward()

    def _step(self) -> None:
        self.opt.step()

    def _one_batch(self, i: int, b: Any) -> None:
        self.iter = i
        x, self.yb = self._to_device(b)
        self.xb = self.dls.apply(x, self.training or self._augment_valid)
        self._with_events(self._do_one_batch, "batch", CancelBatchException)

    def _all_batches(self) -> None:
        self.n_iter = len(self.dl)
        for i, b in enumerate(self.dl):
            self._one_batch(i, b)

    def _do_epoch_train(self) -> None:
        self.dl = self.dls.train
        self.training = True
        self._set_train_mode()
        self._with_events(self._all_batches, "train", CancelTrainException)

    def _sync_buffers(self) -> None:
        """Give every rank rank 0's buffers (BatchNorm statistics), as DDP does before each
        training forward: ranks then validate, and save, the same model."""
        import torch.distributed as dist

        if self.distributed:
            for b in self.model.buffers():
                dist.broadcast(b, 0)

    def _do_epoch_validate(self, dl: Iterable | None = None) -> None:
        self.dl = dl if dl is not None else self.dls.valid
        if self.dl is None:
            return
        self._sync_buffers()
        self.training = False
        self.model.eval()
        with torch.no_grad():
            self._with_events(self._all_batches, "validate", CancelValidException)

    def _do_epoch(self) -> None:
        self._do_epoch_train()
        self._do_epoch_validate()

    def _do_fit(self) -> None:
        if self._resume is not None:  # after before_fit, which resets the callbacks' state
            state, path = self._resume
            self._resume = None
            restore_state(self, state, path)
        for epoch in range(self.start_epoch, self.n_epoch):
            self.epoch = epoch
            self._with_events(self._do_epoch, "epoch", CancelEpochException)

    def _end_cleanup(self) -> None:
        self.xb = self.yb = self.pred = self.loss = self.loss_grad = None
        self.dl = None
        self.training = False

    def fit(
        self,
        n_epoch: int,
        lr: LearningRate | None = None,
        wd: float | None = None,
        cbs: Sequence[Callback] | None = None,
        reset_opt: bool = False,
        start_epoch: int = 0,
        resume: str | Path | None = None,
    ) -> None:
        """Train for ``n_epoch`` epochs at a constant learning rate (plus whatever ``cbs``
        schedule).

        Args:
            n_epoch: Number of epochs (epochs ``start_epoch .. n_epoch - 1`` are run).
            lr: Learning rate (float, ``slice`` or per-group); defaults to ``self.lr``.
            wd: Weight decay for this fit; defaults to ``self.wd``.
            cbs: Callbacks for this fit only.
            reset_opt: Create a fresh optimizer (drops its state).
            start_epoch: Skip the first epochs (schedules start at the matching position).
            resume: A file written by :class:`~dermlearn.training.checkpoint.Checkpoint` during the
                same fit (same method and arguments): continue after its last epoch with
                the model, optimizer, callbacks, random generators and loaders as they were.
        """
        if resume is not None:
            state = load_checkpoint(resume)
            if state["n_epoch"] != n_epoch:
                raise ValueError(f"{resume} was written during a {state['n_epoch']}-epoch fit but this fit has {n_epoch} epochs: "
                                 "resume with the same fit method and arguments")  # fmt: skip
            start_epoch = state["epoch"] + 1
            self._resume = (state, resume)
        if isinstance(n_epoch, bool) or not isinstance(n_epoch, numbers.Integral) or n_epoch < 1:
            raise ValueError(f"n_epoch must be a whole number of epochs >= 1, got {n_epoch!r}")
        if not 0 <= start_epoch <= n_epoch:
            raise ValueError(f"start_epoch must be in [0, n_epoch={n_epoch}], got {start_epoch}")
        if len(self.dls.train) == 0:
            raise ValueError("the training loader is empty (0 batches): check the dataset and batch size")
        if self.temperature != 1.0:
            warnings.warn(f"fit: the temperature {self.temperature:.3g} from calibrate() no longer fits a model that trains "
                          "on; it is reset to 1 (call calibrate() again after training)", RuntimeWarning, stacklevel=2)  # fmt: skip
            self.temperature = 1.0
        with self.added_cbs(cbs):
            if reset_opt or self.opt is None:
                self.create_opt()
            self.set_hyper("wd", self.wd if wd is None else wd)
            self.set_hyper("lr", self.lr if lr is None else lr)
            self.n_epoch, self.start_epoch, self.epoch = n_epoch, start_epoch, start_epoch
            self._train_module = self.model
            if self.distributed:  # wrapped per fit: DDP registers the parameters that train now
                from torch.nn.parallel import DistributedDataParallel

                ids = [self.device.index] if self.device.type == "cuda" else None
                self._train_module = self._ddp = DistributedDataParallel(self.model, device_ids=ids)
            if self.compile:
                if self._ddp is not None:
                    self._train_module = torch.compile(self._ddp)
                else:
                    self._compiled = self._compiled if self._compiled is not None else torch.compile(self.model)
                    self._train_module = self._compiled
            try:
                with self._releasing():
                    self._with_events(self._do_fit, "fit", CancelFitException, self._end_cleanup)
            finally:
                self._ddp = None
                self._train_module = self.model

    # ------------------------------------------------------------------ schedules
    def _default_lr(self, lr: LearningRate | None) -> np.ndarray:
        return lr_per_group(self.lr if lr is None else lr, self.n_groups)

    def _fit_scheduled(self, scheds: dict[str, Any], n_epoch: int, wd: float | None, cbs: Sequence[Callback] | None,
                       reset_opt: bool, start_epoch: int, resume: str | Path | None) -> None:  # fmt: skip
        """:meth:`fit` with the hyper-parameter schedules ``scheds`` (a :class:`ParamScheduler`
        first among ``cbs``): what every ``fit_*`` variant shares."""
        self.fit(n_epoch, wd=wd, cbs=[ParamScheduler(scheds), *(cbs or [])], reset_opt=reset_opt, start_epoch=start_epoch, resume=resume)

    def fit_one_cycle(
        self,
        n_epoch: int,
        lr_max: LearningRate | None = None,
        div: float = 25.0,
        div_final: float = 1e5,
        pct_start: float = 0.25,
        moms: tuple[float, float, float] | None = (0.95, 0.85, 0.95),
        wd: float | None = None,
        cbs: Sequence[Callback] | None = None,
        reset_opt: bool = False,
        start_epoch: int = 0,
        resume: str | Path | None = None,
    ) -> None:
        """One-cycle policy (see :func:`~dermlearn.training.schedule.one_cycle_scheds`)."""
        scheds = one_cycle_scheds(self._default_lr(lr_max), div, div_final, pct_start, moms)
        self._fit_scheduled(scheds, n_epoch, wd, cbs, reset_opt, start_epoch, resume)

    def fit_sgdr(
        self,
        n_cycles: int,
        cycle_len: int,
        lr_max: LearningRate | None = None,
        cycle_mult: int = 2,
        eta_min: float = 0.0,
        wd: float | None = None,
        cbs: Sequence[Callback] | None = None,
        reset_opt: bool = False,
        start_epoch: int = 0,
        resume: str | Path | None = None,
    ) -> None:
        """SGDR: ``n_cycles`` cosine cycles from ``lr_max`` to ``eta_min`` with warm restarts,
        cycle ``i`` lasting ``cycle_len * cycle_mult**i`` epochs (``cycle_mult=1``: equal
        cycles). Trains ``cycle_len * (1 + cycle_mult + ... + cycle_mult**(n_cycles-1))``
        epochs; every restart uses ``lr_max`` exactly."""
        scheds, n_epoch = sgdr_scheds(n_cycles, cycle_len, self._default_lr(lr_max), cycle_mult, eta_min)
        self._fit_scheduled(scheds, n_epoch, wd, cbs, reset_opt, start_epoch, resume)

    def fit_flat_cos(
        self,
        n_epoch: int,
        lr: LearningRate | None = None,
        div_final: float = 1e5,
        pct_start: float = 0.75,
        wd: float | None = None,
        cbs: Sequence[Callback] | None = None,
        reset_opt: bool = False,
        start_epoch: int = 0,
        resume: str | Path | None = None,
    ) -> None:
        """Flat ``lr`` for ``pct_start`` of training, then cosine annealing to ``lr/div_final``."""
        scheds = flat_cos_scheds(self._default_lr(lr), div_final, pct_start)
        self._fit_scheduled(scheds, n_epoch, wd, cbs, reset_opt, start_epoch, resume)

    def fine_tune(
        self,
        epochs: int,
        base_lr: float = 2e-3,
        freeze_epochs: int = 1,
        lr_mult: float = 100.0,
        pct_start: float = 0.3,
        div: float = 5.0,
        **kwargs: Any,
    ) -> None:
        """Transfer learning as fastai does it: ``freeze_epochs`` of one-cycle on the head
        at ``slice(base_lr)``, then unfreeze and one-cycle ``epochs`` at
        ``slice(base_lr/2/lr_mult, base_lr/2)`` with ``pct_start`` and ``div``."""
        self.freeze()
        if freeze_epochs > 0:
            self.fit_one_cycle(freeze_epochs, slice(base_lr), pct_start=0.99, **kwargs)
        base_lr /= 2
        self.unfreeze()
        self.fit_one_cycle(epochs, slice(base_lr / lr_mult, base_lr), pct_start=pct_start, div=div, **kwargs)

    def lr_find(self, *args: Any, **kwargs: Any) -> LRFindResult:
        """LR range test; see :func:`dermlearn.training.lr_finder.lr_find`. The result is
        also kept as :attr:`lr_find_result` (run loggers plot it at the end of the next fit)."""
        self.lr_find_result = lr_find(self, *args, **kwargs)
        return self.lr_find_result

    def explain(self, items: Tensor | str | os.PathLike | Image.Image | Sequence[str | os.PathLike | Image.Image],
                targets: Sequence[Any] = ("top1", "runner_up"), layer: nn.Module | None = None, gbp: bool = True) -> Explanation:  # fmt: skip
        """Grad-CAM and Guided Backprop maps for raw items (a tensor ``(C, H, W)`` or
        ``(B, C, H, W)``), or for image files or PIL images (one or a list, decoded by
        :meth:`load_item`), with probabilities; see :func:`dermlearn.interpret.explain`."""
        return explain(self, items, targets, layer, gbp)

    # ------------------------------------------------------------------ distributed
    def all_reduce_sum(self, t: Tensor) -> Tensor:
        """Sum of ``t`` over all processes of a torch.distributed run (``t`` itself otherwise);
        the collective runs on the learner's device (NCCL needs CUDA tensors)."""
        return all_reduce_sum(t, self.device)

    # ------------------------------------------------------------------ evaluation
    def per_item_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """Loss of each item, shape ``(B,)``."""
        lf = self.loss_func
        old = getattr(lf, "reduction", None)
        if old is None:
            raise TypeError(f"{type(lf).__name__} has no 'reduction' attribute; per-item losses need one")
        lf.reduction = "none"
        try:
            out = lf(pred, target)
        finally:
            lf.reduction = old
        return out.reshape(out.shape[0], -1).mean(dim=1) if out.ndim > 1 else out

    def validate(self, dl: Iterable | None = None) -> dict[str, float]:
        """Loss and metrics on ``dl`` (default: the validation loader), without touching the
        training history. Returns ``{'valid_loss': ..., <metric>: ...}``."""
        dl = dl if dl is not None else self.dls.valid
        if dl is None:
            raise ValueError("no validation loader: pass dl= or build DataLoaders with a valid loader")
        with self._mode_kept(), self._releasing():
            self._do_epoch_validate(dl)
        self._end_cleanup()
        return dict(self.recorder.last_valid)

    def get_preds(
        self,
        dl: Iterable | None = None,
        with_input: bool = False,
        with_loss: bool = False,
        with_decoded: bool = False,
        act: Callable[[Tensor], Tensor] | None = None,
    ) -> tuple[Tensor | None, ...]:
        """Predictions on ``dl`` (default: the validation loader), on the CPU.

        Returns:
            ``(probs, targets)`` plus, in this order when asked, ``decoded`` (class indices
            ``(N,)``), ``losses`` (per item ``(N,)``) and ``inputs`` (model inputs).
            ``probs`` is ``act(logits)`` (default :meth:`activation`: the loss's activation,
            after the temperature of :meth:`calibrate`), ``(N, C)``.
        """
        dl = dl if dl is not None else self.dls.valid
        if dl is None:
            raise ValueError("no validation loader: pass dl=")
        gather = GatherPreds(with_input=with_input, with_loss=with_loss)
        with self._mode_kept(), self.added_cbs([gather]), self._releasing():
            self._do_epoch_validate(dl)
        self._end_cleanup()
        res = gather.result()
        if res["preds"] is None:
            raise ValueError("get_preds: the loader gave no batches")
        act = act if act is not None else self.activation
        probs = act(res["preds"].float())
        out: list[Tensor | None] = [probs, res["targets"]]
        if with_decoded:
            out.append(decodes_of(self.loss_func)(probs))
        if with_loss:
            out.append(res["losses"])
        if with_input:
            out.append(res["inputs"])
        return tuple(out)

    def activation(self, logits: Tensor) -> Tensor:
        """Probabilities ``(N, C)`` from logits ``(N, C)``: the loss's activation of
        ``logits / temperature``: softmax, or for :class:`~dermlearn.BCEWithLogitsOneHot` the
        sigmoid scores normalised to sum 1 (its raw sigmoids with ``multi_label=True``; see
        :mod:`dermlearn.losses`)."""
        return activation_of(self.loss_func)(logits / self.temperature if self.temperature != 1.0 else logits)

    # ------------------------------------------------------------------ inference (dermlearn.inference)
    def calibrate(self, dl: Iterable | None = None) -> float:
        """Temperature scaling (Guo et al., 2017): fit the ``temperature`` that minimises the
        negative log-likelihood of ``dl`` (default: the validation loader) and use it from
        now on in :meth:`get_preds`, :meth:`predict`, :meth:`validate`, :meth:`explain`,
        :meth:`export` and :meth:`export_onnx`. The predicted classes do not change, only
        the probabilities. Fit it on images that neither trained the model nor will report
        its figures; a later ``fit`` resets it to 1 (with a warning).

        Returns:
            The temperature (> 1: the model was overconfident).
        """
        return calibrate(self, dl)

    def tta(self, dl: Iterable | None = None, n: int = 4, beta: float = 0.25) -> tuple[Tensor, Tensor]:
        """Test-time augmentation: the mean probabilities of ``n`` passes with the training
        augmentations (``dls.train_tfms``), blended with the plain pass as fastai does:
        ``(1 - beta) * mean_augmented + beta * plain``; see :func:`dermlearn.inference.tta`.

        Returns:
            ``(probs, targets)`` on the CPU.
        """
        return tta(self, dl, n, beta)

    @property
    def input_size(self) -> int | None:
        """Side of the square the model reads: the size of the preprocessing's resize step
        (``dls.batch_tfms``), else a loaded model file's ``input_size``, else the side of the
        stored images when they are square (data without a resize step); None when none says."""
        return _input_size(self)

    def load_item(self, image: str | os.PathLike | Image.Image) -> Tensor:
        """An image file or PIL image as this model's input item, uint8 ``(3, S, S)`` with
        ``S`` = :attr:`input_size`; see :func:`dermlearn.inference.load_item`."""
        return load_item(self, image)

    def out_of_domain(self, item: Tensor, source: str | os.PathLike | Image.Image | None = None) -> list[str]:
        """Why ``item`` looks unlike the training images of a loaded model file; see
        :func:`dermlearn.inference.out_of_domain`."""
        return out_of_domain(self, item, source)

    def predict_files(self, files: Sequence[str | os.PathLike], bs: int = 64, num_workers: int | None = None,
                      check_domain: bool = False, progress: bool = False) -> FilePredictions:  # fmt: skip
        """Predict image files in batches, decoded by DataLoader workers; unreadable files are
        reported, not fatal; ``check_domain``: out-of-domain images listed too. See
        :func:`dermlearn.inference.predict_files`."""
        return predict_files(self, files, bs, num_workers, check_domain=check_domain, progress=progress)

    def predict(self, item: Tensor | str | os.PathLike | Image.Image, check_domain: bool = True) -> tuple[str | int, int, Tensor]:
        """Predict one image.

        Args:
            item: One image as the dataset stores it, ``(C, H, W)`` (uint8 or float in
                [0, 1]); or an image file or PIL image, decoded as the data pipeline decodes
                files (:func:`dermlearn.data.decode.image_item`: upright, shorter side to
                :attr:`input_size`, centre square).
            check_domain: Warn (:class:`~dermlearn.data.domain.OutOfDomainWarning`) when a loaded
                model file's training domain says the image is clearly out of it
                (:meth:`out_of_domain`).

        Returns:
            ``(label, index, probs)``: the class name (or index when the data has no vocab),
            its index, and the probabilities ``(C,)`` on the CPU.

        Raises:
            UnreadableImage: the file cannot be decoded.
            ValueError: a tensor that is not one image, or a file for a Learner whose input
                size is unknown.
        """
        return predict(self, item, check_domain)

    # ------------------------------------------------------------------ persistence
    def _model_path(self, file: str | Path) -> Path:
        file = Path(file)
        if file.suffix == "":
            file = file.with_suffix(".pth")
        return file if file.is_absolute() or file.parent != Path(".") else self.path / self.model_dir / file

    def save(self, file: str | Path, with_opt: bool = True) -> Path:
        """Save the model's state dict (and the optimizer's) to ``path/model_dir/file.pth``
        atomically. Returns the path."""
        path = self._model_path(file)
        if not is_main_process():  # in a distributed run only rank 0 writes
            return path
        state: dict[str, Any] = {"model": self.model.state_dict()}
        if with_opt and self.opt is not None:
            state["opt"] = self.opt.state_dict()
        return atomic_torch_save(state, path)

    def export(self, path: str | Path, input_size: int | None = None, extra: dict[str, Any] | None = None) -> Path:
        """Write a safe, portable model file (weights + JSON metadata); rebuild it with
        :func:`dermlearn.load_learner`. See :mod:`dermlearn.modelfile.export`."""
        if not is_main_process():  # in a distributed run only rank 0 writes
            return Path(path)
        return export_learner(self, path, input_size, extra)

    def save_pretrained(self, folder: str | Path, **kwargs: Any) -> Path:
        """Write the model in the Hugging Face layout (``model.safetensors``, ``config.json``,
        a model card ``README.md``); :func:`dermlearn.load_learner` reads it. See
        :func:`dermlearn.modelfile.pretrained.save_pretrained` for the keyword arguments."""
        if not is_main_process():  # in a distributed run only rank 0 writes
            return Path(folder)
        return save_pretrained(self, folder, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload :meth:`save_pretrained`'s folder to the Hugging Face hub with
        ``huggingface_hub`` (extra ``dermlearn[hub]``); see
        :func:`dermlearn.modelfile.pretrained.push_to_hub`. Returns the commit URL."""
        return push_to_hub(self, repo_id, **kwargs)

    def export_onnx(self, path: str | Path, input_size: int | None = None, exporter: str = "dynamo") -> Path:
        """ONNX inference graph (uint8 images in, probabilities out); see
        :func:`dermlearn.modelfile.onnx.export_onnx` (extra ``dermlearn[onnx]``)."""
        from dermlearn.modelfile.onnx import (
            export_onnx,  # imports onnx, which only this method needs
        )

        return export_onnx(self, path, input_size, exporter=exporter)

    def load(self, file: str | Path, with_opt: bool = True, strict: bool = True) -> Learner:
        """Load what :meth:`save` wrote (weights-only; no code runs from the file)."""
        state = safe_torch_load(self._model_path(file), map_location=self.device)
        if not isinstance(state, dict) or "model" not in state:
            raise ValueError(f"{self._model_path(file)} was not written by Learner.save (no 'model' entry)")
        try:
            self.model.load_state_dict(state["model"], strict=strict)
        except RuntimeError as e:
            raise ValueError(f"{self._model_path(file)} does not fit this model: {str(e)[:400]}") from e
        if with_opt and "opt" in state:
            if self.opt is None:
                self.create_opt()
            self.opt.load_state_dict(state["opt"])
        return self

    def __repr__(self) -> str:
        return f"Learner(model={type(self.model).__name__}, device={self.device}, cbs={[type(c).__name__ for c in self.cbs]})"
