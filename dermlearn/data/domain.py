"""What a model was trained on, and whether an input looks like it.

A model trained on smartphone photos of the skin (clinical images) classifies a dermoscopy
image, a screenshot or a photo of a cat just as confidently. The model file therefore keeps
its training domain: the imaging modality where the data says it (``'clinical'`` or
``'dermoscopic'``), the data's name, and statistics of the training images' colours. At
prediction time two checks name what is clearly out of that domain:

* **modality**: a model trained on clinical photos is given a photo in which the circular
  field of a dermoscope is found (a dark vignette or a pale rim,
  :func:`dermlearn.transforms.detect_vignette`; no false detection on 284 PAD-UFES-20
  clinical photos, both ISIC dermoscopy images found);
* **colour statistics**: the Mahalanobis distance of eight colour features of the image
  (mean and spread of each channel, mean saturation, dark share of the border) from the
  training images' exceeds ``1.5 x`` the 99th percentile of the training images' own
  distances.

Neither check is a guarantee that an input is in the domain: they catch the clear cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["FEATURES", "MODALITIES", "InputDomain", "OutOfDomainWarning", "colour_features", "photo_thumbnail"]

MODALITIES = ("clinical", "dermoscopic")
FEATURES = ("mean_r", "mean_g", "mean_b", "std_r", "std_g", "std_b", "saturation", "dark_border")


class OutOfDomainWarning(UserWarning):
    """An input looks unlike what the model was trained on (:meth:`InputDomain.check`)."""


def photo_thumbnail(source, max_side: int = 512) -> Tensor:
    """The whole upright photo of a file or PIL image, reduced to at most ``max_side`` on its
    longer side: uint8 ``(3, H, W)`` (for the dermoscope check)."""
    from PIL import Image

    from .decode import load_image

    # both branches give a new image (convert copies), which thumbnail() may shrink in place:
    # a full-resolution photo the caller still holds is not copied a second time
    img = load_image(source, draft_size=max_side) if not isinstance(source, Image.Image) else source.convert("RGB")
    img.thumbnail((max_side, max_side))
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def colour_features(images: Tensor) -> Tensor:
    """The colour features of :data:`FEATURES` of uint8 images ``(B, 3, H, W)`` (any size;
    read at 32x32): float64 ``(B, 8)``, values in [0, 1]."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got shape {tuple(images.shape)}")
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    x = F.interpolate(x.cpu(), size=(32, 32), mode="area")
    border = torch.ones(32, 32, dtype=torch.bool)
    border[4:-4, 4:-4] = False
    dark = (x.mean(1)[:, border] < 0.15).float().mean(1, keepdim=True)
    saturation = (x.amax(1) - x.amin(1)).mean(dim=(1, 2))[:, None]
    return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3)), saturation, dark], dim=1).double()


@dataclass
class InputDomain:
    """A model's training domain (see the module's description).

    Attributes:
        modality: ``'clinical'``, ``'dermoscopic'`` or None (not known).
        data: The training data's name (e.g. ``'PAD-UFES-20'``), or None.
        mean: Mean colour features of the training images, ``(8,)``.
        precision: Inverse of their covariance (shrunk towards its diagonal), ``(8, 8)``.
        threshold: Distance above which an image is out of the domain.
        n: Number of training images the statistics come from.
    """

    modality: str | None
    data: str | None
    mean: np.ndarray
    precision: np.ndarray
    threshold: float
    n: int

    @classmethod
    def fit(cls, images: Tensor, modality: str | None = None, data: str | None = None,
            max_images: int = 5000) -> InputDomain:  # fmt: skip
        """Statistics of training images, uint8 ``(N, 3, H, W)`` with ``N >= 20`` (an evenly
        spaced subset of at most ``max_images``)."""
        if modality not in (None, *MODALITIES):
            raise ValueError(f"modality must be None or one of {MODALITIES}, got {modality!r}")
        if len(images) < 20:
            raise ValueError(f"input statistics need at least 20 training images, got {len(images)}")
        idx = torch.linspace(0, len(images) - 1, min(len(images), max_images)).round().long()
        feats = torch.cat([colour_features(images[idx[i: i + 512]]) for i in range(0, len(idx), 512)]).numpy()
        mean = feats.mean(0)
        cov = np.cov(feats, rowvar=False)
        # shrinkage towards the diagonal (stable on few images), and a floor of 0.02 on every
        # feature's spread: a feature constant in training (no dark border on any photo)
        # must not make the smallest change look infinitely far
        cov = 0.9 * cov + 0.1 * np.diag(np.diag(cov)) + 0.02**2 * np.eye(len(FEATURES))
        precision = np.linalg.inv(cov)
        domain = cls(modality, data, mean, precision, 0.0, len(feats))
        own = domain._distances(feats)
        domain.threshold = float(1.5 * np.quantile(own, 0.99))
        return domain

    def _distances(self, feats: np.ndarray) -> np.ndarray:
        d = feats - self.mean
        return np.sqrt(np.einsum("bi,ij,bj->b", d, self.precision, d))

    def distance(self, images: Tensor) -> np.ndarray:
        """Mahalanobis distance of each image's colour features from the training images',
        ``(B,)`` for uint8 ``(B, 3, H, W)``."""
        return self._distances(colour_features(images).numpy())

    def check(self, item: Tensor, photo: Tensor | None = None) -> list[str]:
        """Why one input looks out of the domain (empty when nothing is found).

        Args:
            item: The model's input item, uint8 ``(3, S, S)``.
            photo: The whole upright photo, uint8 ``(3, H, W)`` (at most about 512 px is
                enough), for the dermoscope check of a clinical model; skipped when None.
        """
        reasons = []
        d = float(self.distance(item[None])[0])
        if d > self.threshold:
            reasons.append(f"its colours are unlike the training images' (distance {d:.1f}, above {self.threshold:.1f}, "
                           f"1.5 x the 99th percentile of the {self.n} training images)")  # fmt: skip
        if self.modality == "clinical" and photo is not None:
            from dermlearn.transforms import detect_vignette

            circle = detect_vignette(photo, method="auto")
            if circle is not None:
                reasons.append(f"it shows a dermoscope's field ({'dark vignette' if circle.source == 'dark' else 'pale rim'}): "
                               f"it looks like a dermoscopy image, and the model was trained on clinical photos")  # fmt: skip
        return reasons

    def describe(self) -> str:
        """e.g. ``'clinical photos (PAD-UFES-20)'``."""
        what = {"clinical": "clinical photos", "dermoscopic": "dermoscopy images"}.get(self.modality or "", "images")
        return what + (f" ({self.data})" if self.data else "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, for model files."""
        return {"modality": self.modality, "data": self.data, "features": list(FEATURES), "mean": self.mean.tolist(),
                "precision": self.precision.tolist(), "threshold": self.threshold, "n": self.n}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputDomain:
        """Inverse of :meth:`to_dict` (ValueError when the entries do not fit)."""
        try:
            if list(d["features"]) != list(FEATURES):
                raise ValueError(f"features {d['features']} are not {list(FEATURES)}")
            mean, precision = np.asarray(d["mean"], dtype=np.float64), np.asarray(d["precision"], dtype=np.float64)
            if mean.shape != (len(FEATURES),) or precision.shape != (len(FEATURES), len(FEATURES)):
                raise ValueError(f"mean {mean.shape} / precision {precision.shape} do not fit {len(FEATURES)} features")
            modality = d.get("modality")
            if modality not in (None, *MODALITIES):
                raise ValueError(f"modality {modality!r}")
            return cls(modality, d.get("data"), mean, precision, float(d["threshold"]), int(d["n"]))
        except (KeyError, TypeError) as e:
            raise ValueError(f"input_domain: {type(e).__name__}: {e}") from e
