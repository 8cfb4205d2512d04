"""Use dermlearn's data, transforms and interpretation from a fastai ``Learner``
(``pip install "dermlearn[fastai]"``; fastai is imported only by these functions).

* :func:`fastai_dataloaders`: dermlearn :class:`~dermlearn.DataLoaders` (``DermData.dls()``,
  ``synthetic_dataloaders``, or your own) as fastai ``DataLoaders``. Batches get dermlearn's
  device pipeline (the corrections passed as ``tfms=``, augmentation in training,
  normalisation), so a fastai model sees what a dermlearn one would.
* :func:`transforms_callback`: dermlearn's photometric corrections as a fastai callback,
  for data loaded by fastai itself.
* :func:`fastai_interpretation`: a fastai learner's predictions as a dermlearn
  :class:`~dermlearn.Interpretation` (confusion matrix, leading confused pairs, report).
  Grad-CAM and Guided Backprop take any model: ``dl.GradCAM(fastai_learn.model, layer)``.

Example::

    import dermlearn as dl
    from fastai.learner import Learner
    from dermlearn.integrations.fastai import fastai_dataloaders

    dls = dl.DermData.pad_ufes_20().dls(bs=32, size=128)
    learn = Learner(fastai_dataloaders(dls), dl.create_model("resnet34", 6), loss_func=dl.CrossEntropy())
    learn.fit_one_cycle(3, 1e-3)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from dermlearn.data.dataloaders import DataLoaders

__all__ = ["FastaiLoader", "fastai_dataloaders", "fastai_interpretation", "transforms_callback"]


def _fastai():
    try:
        import fastai.callback.core
        import fastai.data.core
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError("the fastai bridge needs fastai: pip install 'dermlearn[fastai]'") from e
    return fastai


class FastaiLoader:
    """One dermlearn loader as fastai expects a DataLoader: iterable, sized, movable with
    ``to(device)``, with ``new()`` and ``one_batch()``.

    Args:
        loader: The torch loader of raw batches ``(x, y)`` (uint8 images).
        dls: The dermlearn DataLoaders whose pipeline makes model inputs from ``x``.
        training: Use the training pipeline (augmentation) rather than the evaluation one.
        device: Where batches go before the pipeline runs.
    """

    def __init__(self, loader: Iterable, dls: DataLoaders, training: bool, device: torch.device | str | None = None) -> None:
        self.loader, self.dls, self.training = loader, dls, training
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dataset = getattr(loader, "dataset", None)
        self.bs = getattr(loader, "batch_size", None)
        self.drop_last = bool(getattr(loader, "drop_last", False))

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def n(self) -> int:
        """Number of items."""
        return len(self.dataset) if self.dataset is not None else len(self) * (self.bs or 1)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for x, y in self.loader:
            x = x.to(self.device, non_blocking=True)
            with torch.no_grad():
                x = self.dls.apply(x, self.training)
            yield x, y.to(self.device, non_blocking=True)

    def to(self, device: torch.device | str) -> FastaiLoader:
        self.device = torch.device(device)
        self.dls.to(self.device)
        return self

    def new(self, **kwargs: Any) -> FastaiLoader:
        """fastai asks for an unshuffled copy to predict with; the evaluation loader is one.
        On the training loader, ``new(shuffle=False)`` gives an evaluation pipeline over the
        same (possibly shuffled) loader."""
        training = self.training and kwargs.get("shuffle", True)
        return FastaiLoader(self.loader, self.dls, training, self.device)

    def one_batch(self) -> tuple[Tensor, Tensor]:
        return next(iter(self))


def fastai_dataloaders(dls: DataLoaders, device: torch.device | str | None = None):
    """dermlearn DataLoaders as ``fastai.data.core.DataLoaders`` (train, valid).

    Args:
        dls: dermlearn DataLoaders with a validation loader.
        device: Device of the batches (default: CUDA when available, else the CPU).
    """
    fastai = _fastai()
    if dls.valid is None:
        raise ValueError("fastai needs a validation loader: the DataLoaders have none")
    from dermlearn.training.learner import default_device

    device = torch.device(device) if device is not None else default_device()
    loaders = [FastaiLoader(dls.train, dls, True, device), FastaiLoader(dls.valid, dls, False, device)]
    out = fastai.data.core.DataLoaders(*loaders, device=device)
    out.vocab = dls.vocab
    out.c = dls.c
    return out


def transforms_callback(tfms: Sequence[nn.Module], mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                        training_only: bool = False):  # fmt: skip
    """A fastai ``Callback`` that applies dermlearn transforms (e.g.
    ``[CorrectIllumination(), ShadesOfGray()]``) to every batch, on its device, in
    ``before_batch``.

    fastai batches are usually normalised: give the same ``mean`` and ``std`` as fastai's
    ``Normalize`` so that the transforms see images in [0, 1] (the normalisation is undone
    and redone around them). Without them, batches must already be in [0, 1].

    Args:
        tfms: dermlearn batch transforms on ``(B, 3, H, W)`` floats in [0, 1].
        mean, std: fastai's normalisation statistics, if its batches are normalised.
        training_only: Apply to training batches only (random augmentations); by default
            validation and prediction batches are corrected too.
    """
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std (fastai's Normalize statistics), or neither")
    base = _fastai().callback.core.Callback
    tfms = list(tfms)

    class DermlearnTransforms(base):
        order = 1  # after fastai's own batch transforms (run in its loader)

        def before_batch(self) -> None:
            if training_only and not self.learn.training:
                return
            x = self.learn.xb[0]
            if mean is not None:
                m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
                s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
                x = (x * s + m).clamp(0, 1)
            for t in tfms:
                x = t.to(x.device)(x) if isinstance(t, nn.Module) else t(x)
            if mean is not None:
                x = (x - m) / s
            self.learn.xb = (x, *self.learn.xb[1:])

    return DermlearnTransforms()


def fastai_interpretation(learn, dl=None, vocab: Sequence[str] | None = None):
    """A fastai Learner's predictions on ``dl`` (default: its validation loader) as a dermlearn
    :class:`~dermlearn.Interpretation`; probabilities are the softmax of the model's outputs.

    The confusion analysis (``confusion_matrix``, ``leading_pairs``, ``classification_report``,
    ``top_losses``) works; the galleries need a dermlearn Learner.
    """
    from dermlearn.interpret import Interpretation

    preds, targs, losses = learn.get_preds(dl=dl, with_loss=True, act=lambda o: torch.softmax(o.float(), dim=1))
    vocab = list(vocab if vocab is not None else (getattr(learn.dls, "vocab", None) or range(preds.shape[1])))
    return Interpretation(preds, targs, losses, [str(v) for v in vocab])
