"""Architectures for transfer learning, each split into three layer groups.

:func:`create_model` builds a :class:`DermModel`: a convolutional ``body`` (the backbone
without its classifier, ending in a feature map ``(B, nf, h, w)``) and a new ``head``.
Layer groups (for freezing and discriminative learning rates):

* ResNet: ``[stem, layer1, layer2]``, ``[layer3, layer4]``, ``[head]``;
* DenseNet: ``[conv0 .. denseblock2]``, ``[transition2 .. norm5, relu]``, ``[head]``
  (the body keeps torchvision's final ReLU after ``norm5``, as an ``nn.ReLU`` module, so the
  features match torchvision's and Grad-CAM can hook it);
* timm models: the backbone's parameters halved in order, ``[head]``;
* ``simple_cnn``: four conv blocks, two per group, for tests and the demo;
* ``resnet20`` / ``resnet32`` / ``resnet56``: He et al.'s (2016, section 4.2) ResNets for
  32-px images (a 3x3 stem, three stages of 16, 32 and 64 channels, ``6n + 2`` layers; a
  tenth of ResNet-18's computation at 28 px): ``[stem, stage 1, stage 2]``, ``[stage 3]``,
  ``[head]``. Random init only.

Pretrained weights: ``pretrained=True`` (torchvision's default weights: downloaded once into
torch's hub cache when online; a clear error offline), a torchvision ``WeightsEnum``, or the
path of a local state-dict file of the torchvision model (or of a ``DermModel``'s body, e.g.
one pretrained with dermlearn).

Small images: ImageNet's stem (7x7 convolution with stride 2, then a stride-2 max-pool)
divides the side by 4 before the first block, so a ResNet leaves a 1x1 feature map at 28 px
and Grad-CAM has nothing to localise. ``stem='small'`` (MedMNIST's and the CIFAR ResNets'
choice) puts a 3x3 stride-1 convolution in its place and drops the max-pool: at 28 px a
ResNet's last map is 4x4 and a DenseNet's 3x3. :func:`default_stem` picks it for inputs of
64 px and less. ImageNet weights load into the small stem except its first convolution,
whose 7x7 kernel does not fit (it starts from random weights).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Union

import torch
from torch import Tensor, nn

__all__ = ["ARCHITECTURES", "STEMS", "STEM_CHOICE", "DermModel", "create_head", "create_model", "default_stem", "params_of"]

Pretrained = Union[bool, str, os.PathLike, object, None]

_TV_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
_TV_DENSENETS = ("densenet121", "densenet161", "densenet169", "densenet201")
_SMALL_RESNETS = {"resnet20": 3, "resnet32": 5, "resnet56": 9}  # blocks per stage (n of 6n + 2)
#: Architecture names accepted by :func:`create_model` (plus ``timm:<name>`` with timm).
ARCHITECTURES: tuple[str, ...] = ("simple_cnn", *_TV_RESNETS, *_TV_DENSENETS, *_SMALL_RESNETS)
#: Stems of the torchvision ResNets and DenseNets (see the module's description).
STEMS = ("imagenet", "small")
#: The architectures that take ``stem=``.
STEM_CHOICE: tuple[str, ...] = (*_TV_RESNETS, *_TV_DENSENETS)


def params_of(modules: nn.Module | Sequence[nn.Module]) -> list[nn.Parameter]:
    """All parameters of a module or of a list of modules, in order, without duplicates."""
    mods = [modules] if isinstance(modules, nn.Module) else list(modules)
    seen: set[int] = set()
    out = []
    for m in mods:
        for p in m.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def default_stem(arch: str, size: int) -> str:
    """The stem for ``arch`` at input side ``size``: ``'small'`` for ResNets and DenseNets at
    64 px or less (ImageNet's stem would leave a 2x2 map or smaller), else ``'imagenet'``."""
    return "small" if arch in STEM_CHOICE and size <= 64 else "imagenet"


class AdaptiveConcatPool2d(nn.Module):
    """Concatenation of adaptive average and max pooling: ``(B, C, H, W) -> (B, 2C, 1, 1)``."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([nn.functional.adaptive_max_pool2d(x, 1), nn.functional.adaptive_avg_pool2d(x, 1)], dim=1)


def create_head(nf: int, n_out: int, kind: str = "fastai", dropout: float = 0.5, hidden: int = 512) -> nn.Sequential:
    """A classification head on a ``(B, nf, h, w)`` feature map.

    Args:
        nf: Channels of the feature map.
        n_out: Number of classes.
        kind: ``'fastai'``: concat pooling, BatchNorm, dropout ``dropout/2``, a hidden linear
            layer of ``hidden`` units with ReLU, BatchNorm, dropout, linear (the head the study's
            fastai setup used); ``'linear'``: global average pooling, dropout, linear
            (classic CAM applies to it).
        dropout: Dropout probability.
        hidden: Width of the hidden layer of the ``'fastai'`` head.
    """
    if kind == "linear":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(nf, n_out))
    if kind == "fastai":
        return nn.Sequential(
            AdaptiveConcatPool2d(), nn.Flatten(),
            nn.BatchNorm1d(2 * nf), nn.Dropout(dropout / 2), nn.Linear(2 * nf, hidden, bias=False), nn.ReLU(inplace=True),
            nn.BatchNorm1d(hidden), nn.Dropout(dropout), nn.Linear(hidden, n_out),
        )  # fmt: skip
    raise ValueError(f"head kind must be 'fastai' or 'linear', got {kind!r}")


class DermModel(nn.Module):
    """``body`` (feature extractor) followed by ``head`` (classifier).

    Attributes:
        body: Maps images ``(B, 3, H, W)`` to features ``(B, nf, h, w)``.
        head: Maps features to logits ``(B, n_out)``.
        arch: Architecture name.
        nf: Feature channels.
        stem: ``'imagenet'`` or ``'small'`` (see :func:`create_model`).
    """

    def __init__(self, body: nn.Module, head: nn.Module, arch: str, nf: int, body_split: Callable[[nn.Module], list[list[nn.Parameter]]],
                 stem: str = "imagenet") -> None:  # fmt: skip
        super().__init__()
        self.body, self.head = body, head
        self.arch, self.nf, self.stem = arch, nf, stem
        self._body_split = body_split

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))

    def split_params(self) -> list[list[nn.Parameter]]:
        """Three layer groups: two body groups and the head."""
        return [*self._body_split(self.body), params_of(self.head)]

    @property
    def cam_layer(self) -> nn.Module:
        """The default Grad-CAM layer: the last module of the body (ResNet's ``layer4``,
        DenseNet's final ReLU)."""
        if isinstance(self.body, nn.Sequential):
            return self.body[-1]
        return self.body


def _split_seq_at(k: int) -> Callable[[nn.Module], list[list[nn.Parameter]]]:
    def split(body: nn.Module) -> list[list[nn.Parameter]]:
        return [params_of(body[:k]), params_of(body[k:])]

    return split


def _split_halves(body: nn.Module) -> list[list[nn.Parameter]]:
    ps = params_of(body)
    return [ps[: len(ps) // 2], ps[len(ps) // 2 :]]


class _BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and a shortcut (1x1 convolution when the shape
    changes), as torchvision's ResNet basic block."""

    def __init__(self, ni: int, nf: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ni, nf, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(nf)
        self.conv2 = nn.Conv2d(nf, nf, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(nf)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity() if stride == 1 and ni == nf else nn.Sequential(
            nn.Conv2d(ni, nf, 1, stride=stride, bias=False), nn.BatchNorm2d(nf))  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def _small_resnet(n: int) -> nn.Sequential:
    """He et al.'s ResNet for small images: stem, three stages of ``n`` blocks (16, 32, 64
    channels; strides 1, 2, 2). Output ``(B, 64, S/4, S/4)``."""
    layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True))]
    ni = 16
    for nf, stride in ((16, 1), (32, 2), (64, 2)):
        layers.append(nn.Sequential(*[_BasicBlock(ni if i == 0 else nf, nf, stride if i == 0 else 1) for i in range(n)]))
        ni = nf
    body = nn.Sequential(*layers)
    for m in body.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return body


def _conv_block(ni: int, nf: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(ni, nf, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(nf), nn.ReLU(inplace=True))


def _download_weights(arch: str, weights) -> dict[str, Tensor]:
    """State dict of torchvision ``weights``: from the hub cache, or downloaded with a
    timeout; a clear error when offline."""
    from urllib.parse import urlparse

    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)
    if cached.is_file():
        return torch.load(cached, map_location="cpu", weights_only=True)
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except Exception as e:
        raise RuntimeError(
            f"could not download pretrained weights for {arch} from {weights.url} "
            f"({type(e).__name__}: {e}). This machine may be offline: download the file once on a "
            f"machine that is online and pass pretrained='path/to/{cached.name}', or put it in {cached.parent}"
        ) from e
    finally:
        socket.setdefaulttimeout(old)


def _load_local(arch: str, path: str | os.PathLike) -> dict[str, Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file for {arch} not found: {path}")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} is not a weights-only torch state dict: {type(e).__name__}: {str(e)[:200]}") from e
    if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]
    if not isinstance(sd, dict):
        raise ValueError(f"{path} holds a {type(sd).__name__}, expected a state dict")
    return sd


def _body_names(net: nn.Module, arch: str) -> list[str]:
    """torchvision's name of each module of a :class:`DermModel` body, in order."""
    if arch in _TV_RESNETS:
        return ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    return [f"features.{name}" for name, _ in net.features.named_children()]


def _torchvision_keys(sd: dict[str, Tensor], names: list[str]) -> dict[str, Tensor]:
    """A :class:`DermModel`'s state dict (``body.<i>.*``, ``head.*``) in torchvision's keys
    (the head dropped); a torchvision state dict as it is."""
    if not any(k.startswith("body.") for k in sd):
        return sd
    out = {}
    for k, v in sd.items():
        if k.startswith("body."):
            index, _, rest = k[len("body."):].partition(".")
            if int(index) < len(names):  # DenseNet's final ReLU has no parameters
                out[f"{names[int(index)]}.{rest}"] = v
    return out


def _small_stem(net: nn.Module, arch: str) -> None:
    """Replace ``net``'s ImageNet stem in place: a 3x3 stride-1 convolution, no max-pool."""
    if arch in _TV_RESNETS:
        net.conv1 = nn.Conv2d(3, net.conv1.out_channels, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    else:
        conv0 = net.features.conv0
        net.features.conv0 = nn.Conv2d(3, conv0.out_channels, 3, stride=1, padding=1, bias=False)
        net.features.pool0 = nn.Identity()
    # torchvision's init (Kaiming normal, fan out) for the new convolution
    first = net.conv1 if arch in _TV_RESNETS else net.features.conv0
    nn.init.kaiming_normal_(first.weight, mode="fan_out", nonlinearity="relu")


def _torchvision_backbone(arch: str, pretrained: Pretrained, stem: str = "imagenet") -> nn.Module:
    import torchvision
    from torchvision.models import WeightsEnum

    net = torchvision.models.get_model(arch, weights=None)
    if stem == "small":
        _small_stem(net, arch)
    if pretrained is None or pretrained is False:
        return net
    if pretrained is True:
        sd = _download_weights(arch, torchvision.models.get_model_weights(arch).DEFAULT)
    elif isinstance(pretrained, WeightsEnum):
        sd = _download_weights(arch, pretrained)
    elif isinstance(pretrained, (str, os.PathLike)):
        sd = _load_local(arch, pretrained)
    else:
        raise TypeError(f"pretrained must be a bool, a torchvision WeightsEnum or a file path, got {type(pretrained).__name__}")
    classifier = ("fc.", "classifier.")
    sd = _torchvision_keys(sd, _body_names(net, arch))
    body_sd = {k: v for k, v in sd.items() if not k.startswith(classifier)}
    first = "conv1.weight" if arch in _TV_RESNETS else "features.conv0.weight"
    own = net.state_dict()[first]
    if stem == "small" and first in body_sd and body_sd[first].shape != own.shape:
        del body_sd[first]  # ImageNet's 7x7 kernel does not fit the 3x3 stem: it stays random
    try:
        missing, unexpected = net.load_state_dict(body_sd, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise ValueError(f"pretrained weights do not fit {arch}: {str(e)[:300]}") from e
    missing = [k for k in missing if not k.startswith(classifier) and not (stem == "small" and k == first and first not in body_sd)]
    if missing or unexpected:
        raise ValueError(
            f"pretrained weights do not fit {arch}: {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})"
        )
    return net


def create_model(
    arch: str,
    n_out: int,
    pretrained: Pretrained = False,
    head: str = "fastai",
    dropout: float = 0.5,
    stem: str = "imagenet",
) -> DermModel:
    """Build ``arch`` with a new head of ``n_out`` outputs, split into three layer groups.

    Args:
        arch: One of :data:`ARCHITECTURES`, or ``'timm:<name>'`` for a timm model (extra
            ``dermlearn[timm]``).
        n_out: Number of classes (>= 1).
        pretrained: False (random init), True (torchvision default weights, downloaded and
            cached), a torchvision ``WeightsEnum``, or a local state-dict file path. For timm,
            True/False is passed on to timm.
        head: ``'fastai'`` or ``'linear'`` (see :func:`create_head`).
        dropout: Head dropout.
        stem: ``'imagenet'`` (torchvision's) or ``'small'`` (3x3 stride-1 convolution, no
            max-pool: for inputs of 28-64 px; see the module's description and
            :func:`default_stem`). ResNets and DenseNets only.

    Raises:
        ValueError: unknown architecture, bad ``n_out`` or weights that do not fit.
        RuntimeError: pretrained weights requested offline and not cached.
    """
    if not isinstance(n_out, int) or n_out < 1:
        raise ValueError(f"n_out must be a positive integer, got {n_out!r}")
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
    if stem == "small" and arch not in STEM_CHOICE:
        raise ValueError(f"stem='small' is for the torchvision ResNets and DenseNets, not {arch!r}")
    if arch == "simple_cnn":
        if pretrained not in (False, None):
            raise ValueError("simple_cnn has no pretrained weights")
        body = nn.Sequential(_conv_block(3, 32), _conv_block(32, 64), _conv_block(64, 128), _conv_block(128, 256))
        return DermModel(body, create_head(256, n_out, head, dropout), arch, 256, _split_seq_at(2))
    if arch in _SMALL_RESNETS:
        body = _small_resnet(_SMALL_RESNETS[arch])
        if pretrained not in (False, None):
            if not isinstance(pretrained, (str, os.PathLike)):
                raise ValueError(f"{arch} has no published weights: pass the file of a dermlearn {arch} (Learner.save, export)")
            sd = _load_local(arch, pretrained)
            try:
                body.load_state_dict({k[len("body."):]: v for k, v in sd.items() if k.startswith("body.")})
            except RuntimeError as e:
                raise ValueError(f"pretrained weights do not fit {arch}: {str(e)[:300]}") from e
        return DermModel(body, create_head(64, n_out, head, dropout), arch, 64, _split_seq_at(3))
    if arch in _TV_RESNETS:
        net = _torchvision_backbone(arch, pretrained, stem)
        body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
        nf = net.fc.in_features
        return DermModel(body, create_head(nf, n_out, head, dropout), arch, nf, _split_seq_at(6), stem)
    if arch in _TV_DENSENETS:
        net = _torchvision_backbone(arch, pretrained, stem)
        body = nn.Sequential(*net.features.children(), nn.ReLU(inplace=False))
        nf = net.classifier.in_features
        return DermModel(body, create_head(nf, n_out, head, dropout), arch, nf, _split_seq_at(7), stem)
    if arch.startswith("timm:"):
        try:
            import timm
        except ImportError as e:
            raise ImportError(f"{arch} needs timm: pip install 'dermlearn[timm]'") from e
        name = arch[len("timm:") :]
        try:
            net = timm.create_model(name, pretrained=bool(pretrained), num_classes=0, global_pool="")
        except RuntimeError as e:
            raise ValueError(f"timm does not know the model {name!r}: {e}") from e
        return DermModel(net, create_head(net.num_features, n_out, head, dropout), arch, net.num_features, _split_halves)
    raise ValueError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHITECTURES)} or 'timm:<name>'")
