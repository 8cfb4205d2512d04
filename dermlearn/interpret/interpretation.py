"""``Interpretation``: where a trained classifier goes wrong, and what it looks at there.

Built from a learner's predictions on a loader (the validation loader by default): the
confusion matrix, per-class precision / recall (sensitivity) / specificity / F1 / ROC AUC,
balanced accuracy, ROC curves and the sensitivity reached at a given specificity, the
calibration of the probabilities (reliability diagram, ECE), the most confused
cells and the leading confused *pairs* (the study's analysis), the items with the highest
loss, metrics per metadata group (e.g. skin type), and galleries of Grad-CAM and Guided
Backprop maps for both classes of a confused pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dermlearn.evaluation.bootstrap import bootstrap_ci
from dermlearn.evaluation.metrics import (
    accuracy,
    balanced_accuracy,
    calibration_bins,
    expected_calibration_error,
    macro_f1,
    metric_name,
    per_class_auc,
    roc_auc,
    roc_curve,
)
from dermlearn.evaluation.metrics import confusion_matrix as _confusion
from dermlearn.evaluation.plots import plot_confusion_matrix, plot_reliability, plot_roc_curves

from .confusion import leading_pairs, most_confused
from .gradcam import GradCAM
from .guided_backprop import GuidedBackprop
from .targets import Target

__all__ = ["SUMMARY_METRICS", "Interpretation", "gbp_image"]

#: The scalar metrics :meth:`Interpretation.bootstrap` and ``dermlearn interpret`` report.
SUMMARY_METRICS = (accuracy, balanced_accuracy, macro_f1, roc_auc, expected_calibration_error)


def gbp_image(g: Tensor) -> Tensor:
    """Guided Backprop gradients ``(C, H, W)`` -> a displayable ``(H, W, C)`` image in [0, 1]
    (standardised, scaled by 0.1 around 0.5: the usual rendering)."""
    g = g.detach().float()
    g = (g - g.mean()) / (g.std() + 1e-8) * 0.1 + 0.5
    return g.clamp(0, 1).permute(1, 2, 0)


class Interpretation:
    """Confusion analysis of predictions.

    Args:
        probs: Probabilities ``(N, C)``.
        targets: Class indices ``(N,)``.
        losses: Per-item losses ``(N,)``.
        vocab: Class names.
        learn: The learner (for images and maps), optional.
        dl: The loader the predictions come from (unshuffled), optional.
    """

    def __init__(self, probs: Tensor, targets: Tensor, losses: Tensor, vocab: Sequence[str], learn=None, dl=None) -> None:
        if targets.ndim == 2:
            targets = targets.argmax(1)
        if not (len(probs) == len(targets) == len(losses)):
            raise ValueError(f"probs, targets and losses differ in length: {len(probs)}, {len(targets)}, {len(losses)}")
        if probs.shape[1] != len(vocab):
            raise ValueError(f"probs have {probs.shape[1]} classes but the vocab has {len(vocab)}")
        self.probs, self.targets, self.losses = probs, targets.long(), losses
        self.preds = probs.argmax(1)
        self.vocab = list(vocab)
        self.learn, self.dl = learn, dl

    @classmethod
    def from_learner(cls, learn, dl=None) -> Interpretation:
        """Predict ``dl`` (default: the validation loader) with ``learn``."""
        dl = dl if dl is not None else learn.dls.valid
        if dl is None:
            raise ValueError("no loader to interpret: pass dl= or give the DataLoaders a validation loader")
        probs, targets, losses = learn.get_preds(dl, with_loss=True)
        vocab = learn.dls.vocab or [str(i) for i in range(probs.shape[1])]
        return cls(probs, targets, losses, vocab, learn, dl)

    # ------------------------------------------------------------------ tables
    def confusion_matrix(self) -> np.ndarray:
        """Counts ``(C, C)``, rows actual, columns predicted."""
        return _confusion(self.probs, self.targets, len(self.vocab)).numpy()

    def plot_confusion_matrix(self, normalize: bool = False, title: str | None = None, ax=None):
        """Plot the confusion matrix (counts, or rows normalised). Returns the Figure."""
        return plot_confusion_matrix(self.confusion_matrix(), self.vocab, normalize, title, ax)

    def classification_report(self):
        """pandas DataFrame, one row per class (index: class): ``precision``, ``recall``
        (sensitivity), ``specificity`` (recall of the other classes against this one),
        ``f1``, ``auc`` (one-vs-rest ROC AUC of the class's probability) and ``support``.
        Recall and AUC are NaN for a class without items."""
        import pandas as pd

        cm = self.confusion_matrix().astype(np.float64)
        tp = np.diag(cm)
        support, predicted = cm.sum(1), cm.sum(0)
        precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
        recall = np.divide(tp, support, out=np.full_like(tp, np.nan), where=support > 0)
        negatives, false_pos = cm.sum() - support, predicted - tp
        specificity = np.divide(negatives - false_pos, negatives, out=np.full_like(tp, np.nan), where=negatives > 0)
        denom = precision + np.nan_to_num(recall)
        f1 = np.divide(2 * precision * np.nan_to_num(recall), denom, out=np.zeros_like(tp), where=denom > 0)
        auc = per_class_auc(self.probs, self.targets).cpu().numpy()
        return pd.DataFrame({"precision": precision, "recall": recall, "specificity": specificity, "f1": f1, "auc": auc,
                             "support": support.astype(int)}, index=self.vocab)  # fmt: skip

    @property
    def accuracy(self) -> float:
        return float((self.preds == self.targets).float().mean())

    @property
    def balanced_accuracy(self) -> float:
        """Mean recall over classes present in the targets."""
        return float(np.nanmean(self.classification_report()["recall"].to_numpy()))

    @property
    def roc_auc(self) -> float:
        """Macro one-vs-rest ROC AUC over the classes that have items (NaN when none has)."""
        return float(roc_auc(self.probs, self.targets))

    def expected_calibration_error(self, n_bins: int = 15) -> float:
        """ECE of the top-label confidence (see :func:`dermlearn.evaluation.metrics.expected_calibration_error`)."""
        return float(expected_calibration_error(self.probs, self.targets, n_bins))

    def bootstrap(self, metrics: Sequence | None = None, n: int = 1000, level: float = 0.95, groups: Sequence[Any] | None = None,
                  seed: int = 0):  # fmt: skip
        """Metrics with BCa bootstrap intervals (see :func:`dermlearn.bootstrap_ci`).

        Args:
            metrics: Scalar metrics ``(probs, targets) -> Tensor``; default
                :data:`SUMMARY_METRICS` (accuracy, balanced accuracy, macro F1, ROC AUC,
                calibration error).
            n: Resamples.
            level: Coverage of each interval.
            groups: One value per item (e.g. patient id) to resample whole groups; several
                photos of one patient are not independent evidence.
            seed: Seed of the resampling.

        Returns:
            pandas DataFrame indexed by metric name with columns ``value``, ``low``, ``high``.
        """
        import pandas as pd

        metrics = metrics if metrics is not None else SUMMARY_METRICS
        rows = {metric_name(m): bootstrap_ci(m, self.probs, self.targets, n, level, groups, seed) for m in metrics}
        return pd.DataFrame.from_dict(rows, orient="index", columns=["value", "low", "high"])

    def roc_curve(self, c: str | int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(fpr, tpr, thresholds)`` of class ``c`` against the rest, from its probability
        (see :func:`dermlearn.evaluation.metrics.roc_curve`)."""
        i = self._class_index(c)
        fpr, tpr, thr = roc_curve(self.probs[:, i], self.targets == i)
        return fpr.numpy(), tpr.numpy(), thr.numpy()

    def sensitivity_at_specificity(self, c: str | int, specificity: float) -> tuple[float, float]:
        """The highest sensitivity for class ``c`` whose specificity is at least
        ``specificity``, calling an item ``c`` when ``probs[:, c] >= threshold``.

        Args:
            c: Class name or index.
            specificity: Required specificity, in [0, 1] (e.g. 0.8 for a screening target).

        Returns:
            ``(sensitivity, threshold)``; of equally sensitive thresholds the highest (the
            most specific); ``inf`` when only calling nothing ``c`` reaches the
            specificity. Measured on these predictions: a threshold chosen here and
            reported here is optimistic; choose it on a validation set.
        """
        if not 0.0 <= specificity <= 1.0:
            raise ValueError(f"specificity must be in [0, 1], got {specificity}")
        fpr, tpr, thr = self.roc_curve(c)
        ok = 1.0 - fpr >= specificity - 1e-12
        best = int(np.flatnonzero(ok)[np.argmax(tpr[ok])])
        return float(tpr[best]), float(thr[best])

    def plot_roc(self, classes: Sequence[str | int] | None = None, title: str | None = None, ax=None):
        """ROC curves of ``classes`` (default: every class with items and non-items), each
        against the rest, with their AUC in the legend. Returns the Figure."""
        auc = per_class_auc(self.probs, self.targets).cpu().numpy()
        idxs = [self._class_index(c) for c in classes] if classes is not None else [i for i in range(len(self.vocab)) if not np.isnan(auc[i])]
        curves = {}
        for i in idxs:
            if np.isnan(auc[i]):
                raise ValueError(f"class {self.vocab[i]!r} has no ROC curve here: it needs items of the class and of others")
            fpr, tpr, _ = self.roc_curve(i)
            curves[self.vocab[i]] = (fpr, tpr, float(auc[i]))
        return plot_roc_curves(curves, title, ax)

    def plot_calibration(self, n_bins: int = 15, title: str | None = None, ax=None):
        """Reliability diagram of the top-label confidence in ``n_bins`` bins, with the ECE
        of the same bins in the title. Returns the Figure."""
        bins = {k: v.cpu().numpy() for k, v in calibration_bins(self.probs, self.targets, n_bins).items()}
        return plot_reliability(bins, self.expected_calibration_error(n_bins), title, ax)

    def most_confused(self, min_val: int = 1) -> list[tuple[str, str, int]]:
        """``(actual, predicted, count)`` off-diagonal cells, most frequent first."""
        return most_confused(self.confusion_matrix(), self.vocab, min_val)

    def leading_pairs(self, min_count: int = 5) -> list[tuple[str, str, int]]:
        """Symmetric pair counts ``(a, b, count)``, most frequent first (the study's table)."""
        return leading_pairs(self.confusion_matrix(), self.vocab, min_count)

    def top_losses(self, k: int | None = None) -> tuple[Tensor, Tensor]:
        """The ``k`` highest losses and their item indices (all items when k is None)."""
        k = len(self.losses) if k is None else min(k, len(self.losses))
        return self.losses.topk(k)

    def metrics_by_group(self, groups: Sequence[Any], name: str = "group"):
        """Accuracy and balanced accuracy per group of items (e.g. Fitzpatrick skin type).

        Args:
            groups: One group value per item (None / NaN rows are reported as ``'missing'``).
            name: Column name for the group.

        Returns:
            pandas DataFrame with columns ``name``, ``n``, ``accuracy``, ``balanced_accuracy``.
        """
        import pandas as pd

        if len(groups) != len(self.targets):
            raise ValueError(f"groups has {len(groups)} values for {len(self.targets)} items")
        keys = ["missing" if g is None or (isinstance(g, float) and np.isnan(g)) else g for g in groups]
        rows = []
        for g in sorted(set(keys), key=str):
            idx = torch.tensor([i for i, k in enumerate(keys) if k == g])
            t, p = self.targets[idx], self.preds[idx]
            recalls = [float((p[t == c] == c).float().mean()) for c in t.unique()]
            rows.append({name: g, "n": len(idx), "accuracy": float((t == p).float().mean()), "balanced_accuracy": float(np.mean(recalls))})
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ images and maps
    def _require_learn(self) -> None:
        if self.learn is None or self.dl is None or not hasattr(self.dl, "dataset"):
            raise ValueError("this needs the learner and a loader with a .dataset: build it with Interpretation.from_learner")

    def _inputs(self, idxs: Sequence[int]) -> Tensor:
        ds = self.dl.dataset
        items = torch.stack([ds[int(i)][0] for i in idxs])
        return self.learn.dls.apply(items.to(self.learn.device), training=False)

    def cam_maps(self, idxs: Sequence[int] | None = None, target: Target = "top1", layer: nn.Module | None = None,
                 bs: int = 32) -> Tensor:  # fmt: skip
        """Grad-CAM maps of items ``idxs`` (default: all, in order) for ``target`` (default:
        each item's predicted class), in the input's resolution: ``(N, H, W)``, non-negative,
        not normalised, on the CPU. ``layer`` defaults to the one the CLI uses
        (:func:`~dermlearn.interpret.gradcam.default_cam_layer`); ``bs`` items per pass."""
        self._require_learn()
        idxs = list(range(len(self.targets))) if idxs is None else [int(i) for i in idxs]
        cam = GradCAM(self.learn.model, layer)
        maps = [cam(self._inputs(idxs[i : i + bs]), target).maps.cpu() for i in range(0, len(idxs), bs)]
        return torch.cat(maps) if maps else torch.empty(0)

    def plot_top_losses(self, k: int = 9, ncols: int = 3):
        """The ``k`` items with the highest loss; each titled with the actual and predicted
        class, the loss, and the probability of the **actual** class and of the predicted
        class (fastai shows only the predicted one). Returns the Figure."""
        import matplotlib.pyplot as plt

        self._require_learn()
        losses, idxs = self.top_losses(k)
        x = self._inputs(idxs.tolist())
        imgs = self.learn.dls.decode_batch(x).cpu()
        nrows = -(-len(idxs) // ncols)
        fig, axs = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.4 * nrows), squeeze=False)
        for ax in axs.flat:
            ax.axis("off")
        for ax, img, i, loss in zip(axs.flat, imgs, idxs.tolist(), losses.tolist()):
            a, p = int(self.targets[i]), int(self.preds[i])
            ax.imshow(img.permute(1, 2, 0).numpy())
            ax.set_title(f"{self.vocab[a]} / {self.vocab[p]}\nloss {loss:.2f}  P(actual) {self.probs[i, a]:.2f}  P(pred) {self.probs[i, p]:.2f}", fontsize=8)
        fig.suptitle("actual / predicted, loss, probabilities")
        fig.tight_layout()
        return fig

    def pair_cases(self, a: str | int, b: str | int, k: int = 3) -> tuple[list[int], list[int]]:
        """Item indices of ``a`` predicted as ``b`` and of ``b`` predicted as ``a`` (at most
        ``k`` each, highest loss first)."""
        ia, ib = self._class_index(a), self._class_index(b)

        def cases(actual: int, pred: int) -> list[int]:
            idx = ((self.targets == actual) & (self.preds == pred)).nonzero().flatten()
            order = self.losses[idx].argsort(descending=True)
            return idx[order][:k].tolist()

        return cases(ia, ib), cases(ib, ia)

    def pair_gallery_title(self, a: str | int, b: str | int, shown_ab: int, shown_ba: int) -> str:
        """A pair gallery's title: the pair's error counts in the confusion matrix, each
        direction and their sum, then how many cases of each direction the gallery shows."""
        ia, ib = self._class_index(a), self._class_index(b)
        cm = self.confusion_matrix()
        na, nb = self.vocab[ia], self.vocab[ib]
        n_ab, n_ba = int(cm[ia, ib]), int(cm[ib, ia])
        return (f"{na} vs {nb}: {n_ab + n_ba} errors ({n_ab} {na}->{nb}, {n_ba} {nb}->{na}); "
                f"shown: {shown_ab} {na}->{nb} and {shown_ba} {nb}->{na}, highest loss first")

    def _class_index(self, c: str | int) -> int:
        if isinstance(c, int):
            if not 0 <= c < len(self.vocab):
                raise ValueError(f"class index {c} out of range for {len(self.vocab)} classes")
            return c
        if c not in self.vocab:
            raise ValueError(f"unknown class {c!r}; classes are {self.vocab}")
        return self.vocab.index(c)

    def plot_pair_gallery(self, a: str | int, b: str | int, k: int = 3, path: str | Path | None = None, layer=None):
        """For the confused pair (a, b): the k cases of a predicted as b and of b predicted as
        a. Each row shows the image, then Grad-CAM and Guided Backprop for class a and for
        class b, titled with their probabilities. Saved as PNG when ``path`` is given.

        Returns:
            The matplotlib Figure (None when the pair has no confused case).
        """
        import matplotlib.pyplot as plt

        self._require_learn()
        ia, ib = self._class_index(a), self._class_index(b)
        ab, ba = self.pair_cases(ia, ib, k)
        idxs = ab + ba
        if not idxs:
            return None
        x = self._inputs(idxs)
        cam = GradCAM(self.learn.model, layer)
        gbp = GuidedBackprop(self.learn.model)
        maps = {c: (cam(x, c).normalized().cpu(), gbp(x, c).maps.cpu()) for c in (ia, ib)}
        imgs = self.learn.dls.decode_batch(x).cpu()
        fig, axs = plt.subplots(len(idxs), 5, figsize=(13, 2.8 * len(idxs)), squeeze=False)
        for r, i in enumerate(idxs):
            img = imgs[r].permute(1, 2, 0).numpy()
            t, p = self.vocab[int(self.targets[i])], self.vocab[int(self.preds[i])]
            axs[r, 0].imshow(img)
            axs[r, 0].set_title(f"actual {t}, predicted {p}", fontsize=9)
            for j, c in enumerate((ia, ib)):
                name, prob = self.vocab[c], float(self.probs[i, c])
                axs[r, 1 + 2 * j].imshow(img)
                axs[r, 1 + 2 * j].imshow(maps[c][0][r].numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
                axs[r, 1 + 2 * j].set_title(f"Grad-CAM {name} {prob:.3f}", fontsize=9)
                axs[r, 2 + 2 * j].imshow(gbp_image(maps[c][1][r]).numpy())
                axs[r, 2 + 2 * j].set_title(f"GBP {name} {prob:.3f}", fontsize=9)
        for ax in axs.flat:
            ax.axis("off")
        fig.suptitle(self.pair_gallery_title(ia, ib, len(ab), len(ba)))
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))  # room for the title above the first row
        if path is not None:
            from dermlearn.io import atomic_write

            atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=90))
        return fig
