"""A seeded synthetic lesion dataset: the demo's default data and the tests' data.

Each image is textured skin of a random tone with one lesion whose class decides its shape,
colour and texture:

============  ==============================================================
``macula``    flat brown oval, uniform, soft edge
``tumor``     round raised nodule: pink-red, shaded, with a specular highlight
``ulcer``     red ring around a yellowish crater
``erythema``  large, irregular, diffuse red patch with blotchy texture
``leukoderma`` irregular depigmented (near-white) patch
============  ==============================================================

Optional *confounders*, applied to a fraction of images, reproduce what the study blames
for errors in user-submitted photos, so corrections can be shown to work:

* ``illumination``: a smooth multiplicative gradient (one side at 0.4-0.7 of the other);
* ``gamma``: ``img ** g`` with ``g`` in [0.6, 1.6];
* ``cast``: a per-channel colour cast in [0.8, 1.2];
* ``fov``: the lesion is small in a wide field of view (radius 5-9% of the image).

Everything is drawn from one ``torch.Generator`` seeded with ``seed``: the same arguments
give the same images bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from dermlearn.transforms.normalize import Normalize

from .dataloaders import DataLoaders

__all__ = ["CONFOUNDERS", "LESION_CLASSES", "SyntheticLesions", "make_lesions", "synthetic_dataloaders"]

LESION_CLASSES: tuple[str, ...] = ("macula", "tumor", "ulcer", "erythema", "leukoderma")
CONFOUNDERS: tuple[str, ...] = ("illumination", "gamma", "cast", "fov")


@dataclass
class SyntheticLesions(Dataset):
    """Synthetic lesion images.

    Attributes:
        images: uint8 ``(N, 3, S, S)``.
        labels: int64 ``(N,)`` class indices into ``classes``.
        masks: bool ``(N, S, S)``, True on the lesion.
        classes: Class names.
        meta: One dict per image: the confounders applied and their parameters.
    """

    images: Tensor
    labels: Tensor
    masks: Tensor
    classes: list[str]
    meta: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.images[i], self.labels[i]


def _smooth_noise(n: int, size: int, cells: int, g: torch.Generator) -> Tensor:
    """Smooth noise ``(n, 1, size, size)`` with roughly unit std: bicubic upsampling of a
    ``cells x cells`` random grid."""
    z = torch.randn(n, 1, cells, cells, generator=g)
    return F.interpolate(z, size=(size, size), mode="bicubic", align_corners=False)


def _u(n: int, lo: float, hi: float, g: torch.Generator) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def make_lesions(
    n: int = 500,
    size: int = 64,
    n_classes: int = 5,
    seed: int = 0,
    confounders: Sequence[str] = (),
    confound_p: float = 0.5,
    center_jitter: float = 0.12,
) -> SyntheticLesions:
    """Generate ``n`` synthetic lesion images, classes balanced (``n // n_classes`` each,
    the remainder spread over the first classes), in a seeded random order.

    Args:
        n: Number of images (>= n_classes).
        size: Side of the square images in pixels (>= 16).
        n_classes: Number of classes, 2 to 5 (the first of :data:`LESION_CLASSES`).
        seed: Seed of the generator; same arguments, same images.
        confounders: Any of :data:`CONFOUNDERS`.
        confound_p: Probability that each confounder is applied to an image, in [0, 1].
        center_jitter: Lesion centres are uniform in ``[0.5 - j, 0.5 + j]`` of the image
            side along each axis, ``j`` in [0, 0.35].

    Returns:
        A :class:`SyntheticLesions` dataset.
    """
    if not 2 <= n_classes <= len(LESION_CLASSES):
        raise ValueError(f"n_classes must be between 2 and {len(LESION_CLASSES)}, got {n_classes}")
    if n < n_classes:
        raise ValueError(f"n must be at least n_classes={n_classes}, got {n}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    bad = [c for c in confounders if c not in CONFOUNDERS]
    if bad:
        raise ValueError(f"unknown confounders {bad}; expected any of {CONFOUNDERS}")
    if not 0.0 <= confound_p <= 1.0:
        raise ValueError(f"confound_p must be in [0, 1], got {confound_p}")
    if not 0.0 <= center_jitter <= 0.35:
        raise ValueError(f"center_jitter must be in [0, 0.35], got {center_jitter}")

    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % n_classes
    labels = labels[torch.randperm(n, generator=g)]
    S = size

    # skin: tone between light and dark, low-frequency mottling and fine grain
    tone = _u(n, 0.0, 0.7, g)[:, None]
    light, dark = torch.tensor([0.93, 0.78, 0.67]), torch.tensor([0.50, 0.33, 0.24])
    base = light + tone * (dark - light)  # (n, 3)
    skin = base[:, :, None, None] * (1 + 0.05 * _smooth_noise(n, S, 6, g)) + 0.012 * torch.randn(n, 3, S, S, generator=g)

    # geometry: centre, radius, elongation, orientation, irregular outline
    fov = torch.zeros(n, dtype=torch.bool)
    if "fov" in confounders:
        fov = torch.rand(n, generator=g) < confound_p
    r0 = torch.where(fov, _u(n, 0.05, 0.09, g), _u(n, 0.17, 0.27, g)) * S
    r0 = torch.where(labels == 3, r0 * 1.3, r0)  # erythema is larger
    cx = S / 2 + _u(n, -center_jitter, center_jitter, g) * S
    cy = S / 2 + _u(n, -center_jitter, center_jitter, g) * S
    elong = torch.where(labels == 0, _u(n, 1.2, 1.6, g), _u(n, 1.0, 1.15, g))
    phi = _u(n, 0, math.pi, g)
    irregular = torch.tensor([0.05, 0.02, 0.05, 0.18, 0.16])[labels]
    yy, xx = torch.meshgrid(torch.arange(S, dtype=torch.float32) + 0.5, torch.arange(S, dtype=torch.float32) + 0.5, indexing="ij")
    dx, dy = xx[None] - cx[:, None, None], yy[None] - cy[:, None, None]
    c, s = torch.cos(phi)[:, None, None], torch.sin(phi)[:, None, None]
    u, v = dx * c + dy * s, (-dx * s + dy * c) * elong[:, None, None]
    theta = torch.atan2(v, u)
    outline = torch.ones_like(theta)
    for k in (2, 3, 5):
        amp = irregular[:, None, None] * torch.rand(n, 1, 1, generator=g)
        ph = _u(n, 0, 2 * math.pi, g)[:, None, None]
        outline = outline + amp * torch.cos(k * theta + ph)
    d = torch.sqrt(u**2 + v**2) / (r0[:, None, None] * outline)  # 1 on the outline
    edge = torch.tensor([0.10, 0.03, 0.05, 0.20, 0.10])[labels][:, None, None]
    alpha = torch.sigmoid((1 - d) / edge)  # (n, S, S) in (0, 1)
    masks = d < 1

    # lesion colour maps per class
    jitter = 1 + 0.08 * torch.randn(n, 3, 1, 1, generator=g)
    tex = _smooth_noise(n, S, 10, g)
    d4 = d[:, None]
    lesion = torch.empty(n, 3, S, S)
    col = {
        0: torch.tensor([0.45, 0.28, 0.18]),
        1: torch.tensor([0.80, 0.45, 0.45]),
        2: torch.tensor([0.70, 0.18, 0.18]),
        3: torch.tensor([0.88, 0.42, 0.42]),
        4: torch.tensor([0.97, 0.93, 0.89]),
    }
    crater = torch.tensor([0.86, 0.76, 0.45])
    strength = torch.ones(n, 1, 1, 1)
    for k in range(n_classes):
        idx = (labels == k).nonzero().flatten()
        if len(idx) == 0:
            continue
        colour = col[k][None, :, None, None] * jitter[idx]
        if k == 0:  # macula: flat, slightly mottled
            lesion[idx] = colour * (1 + 0.04 * tex[idx])
        elif k == 1:  # tumor: dome shading + specular highlight
            dome = 0.75 + 0.4 * (1 - d4[idx].clamp(max=1) ** 2)
            hx, hy = -0.35 * r0[idx], -0.35 * r0[idx]
            spot = torch.exp(-((dx[idx] - hx[:, None, None]) ** 2 + (dy[idx] - hy[:, None, None]) ** 2) / (0.2 * r0[idx][:, None, None]) ** 2)
            lesion[idx] = colour * dome + 0.25 * spot[:, None]
        elif k == 2:  # ulcer: red rim, yellowish crater
            inner = torch.sigmoid((0.55 - d4[idx]) / 0.06)
            lesion[idx] = colour * (1 - inner) + (crater[None, :, None, None] * jitter[idx]) * inner * (1 + 0.08 * tex[idx])
        elif k == 3:  # erythema: blotchy, partly transparent red
            lesion[idx] = colour * (1 + 0.10 * tex[idx])
            strength[idx] = 0.65
        else:  # leukoderma
            lesion[idx] = colour * (1 + 0.03 * tex[idx])
            strength[idx] = 0.85
    a = alpha[:, None] * strength
    img = skin * (1 - a) + lesion * a

    meta: list[dict[str, Any]] = [{"fov": bool(f)} for f in fov]
    if "illumination" in confounders:
        on = torch.rand(n, generator=g) < confound_p
        lo = _u(n, 0.4, 0.7, g)
        ang = _u(n, 0, 2 * math.pi, g)
        t = ((xx[None] - S / 2) * torch.cos(ang)[:, None, None] + (yy[None] - S / 2) * torch.sin(ang)[:, None, None]) / (S / math.sqrt(2)) + 0.5
        field_ = lo[:, None, None] + (1 - lo[:, None, None]) * t.clamp(0, 1)
        img = torch.where(on[:, None, None, None], img * field_[:, None], img)
        for i in range(n):
            meta[i]["illumination"] = float(lo[i]) if on[i] else None
    if "gamma" in confounders:
        on = torch.rand(n, generator=g) < confound_p
        gam = torch.where(on, _u(n, 0.6, 1.6, g), torch.ones(n))
        img = img.clamp(0, 1) ** gam[:, None, None, None]
        for i in range(n):
            meta[i]["gamma"] = float(gam[i]) if on[i] else None
    if "cast" in confounders:
        on = torch.rand(n, generator=g) < confound_p
        cast = torch.where(on[:, None], _u(3 * n, 0.8, 1.2, g).view(n, 3), torch.ones(n, 3))
        img = img * cast[:, :, None, None]
        for i in range(n):
            meta[i]["cast"] = cast[i].tolist() if on[i] else None

    images = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return SyntheticLesions(images, labels.long(), masks, list(LESION_CLASSES[:n_classes]), meta)


def synthetic_dataloaders(
    n: int = 500,
    size: int = 64,
    n_classes: int = 5,
    bs: int = 32,
    valid_pct: float = 0.2,
    seed: int = 0,
    confounders: Sequence[str] = (),
    confound_p: float = 0.5,
    center_jitter: float = 0.12,
) -> DataLoaders:
    """:func:`make_lesions` split into training and validation loaders (the last
    ``valid_pct`` of the already shuffled images), with ImageNet normalisation on the device.

    The training loader shuffles with a generator seeded from ``seed``; batches are uint8.
    """
    if not 0.0 < valid_pct < 1.0:
        raise ValueError(f"valid_pct must be in (0, 1), got {valid_pct}")
    ds = make_lesions(n, size, n_classes, seed, confounders, confound_p, center_jitter)
    n_valid = max(1, round(n * valid_pct))
    train = SyntheticLesions(ds.images[:-n_valid], ds.labels[:-n_valid], ds.masks[:-n_valid], ds.classes, ds.meta[:-n_valid])
    valid = SyntheticLesions(ds.images[-n_valid:], ds.labels[-n_valid:], ds.masks[-n_valid:], ds.classes, ds.meta[-n_valid:])
    g = torch.Generator().manual_seed(seed)
    train_dl = DataLoader(train, batch_size=bs, shuffle=True, drop_last=len(train) > bs, generator=g)
    valid_dl = DataLoader(valid, batch_size=bs * 2, shuffle=False)
    return DataLoaders(train_dl, valid_dl, batch_tfms=[Normalize()], vocab=ds.classes)
