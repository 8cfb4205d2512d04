"""MedMNIST-C (Di Salvo et al., 2024), the ``medmnistc`` package's corruptions, on dermlearn's
uint8 image tensors: a corrupted copy of a test split at every severity, a pool of the
package's own training augmentation (``AugMedMNISTC``), and its summary errors.

The package is an optional extra, never a dependency of dermlearn:
``pip install --no-deps medmnistc Wand`` (its metadata pins ``medmnist==3.0.1`` and
``scikit-image==0.23.2``; it runs with newer ones) and, for its motion blur, ImageMagick's
MagickWand (``apt-get install libmagickwand-dev``). The package's motion blur decodes
ImageMagick's result with ``np.fromstring``, which NumPy 2 removed; :class:`WandMotionBlur`
runs the same ImageMagick operation with the package's parameters in its place. Corruptions
that still cannot run here are left out with their reason.

Resolution. MedMNIST-C corrupts the 224-px MedMNIST+ images; its DermaMNIST parameters
(blur radii, noise, the characters' positions) are in 224-px units, and ``characters``
fails below about 100 px. :func:`corrupt` therefore upsamples each image to ``work_size``
(224, bilinear), corrupts it there and box-averages it back to its own side: a 28-px model
sees what downsampling the published corrupted set would give it. Noise and blur lose most
of their strength on the way down; brightness, contrast and black corners do not.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import random
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from dermlearn.callback import Callback

__all__ = ["INSTALL", "MedMNISTCPool", "WandMotionBlur", "augmentation_pool", "corrupt", "corrupted_sets", "load_corruptions",
           "summary_errors"]  # fmt: skip

INSTALL = "pip install --no-deps medmnistc Wand (and for motion blur: apt-get install libmagickwand-dev)"


class WandMotionBlur:
    """MedMNIST-C's motion blur through Wand's ``Image.motion_blur`` (ImageMagick's
    ``MagickMotionBlurImage``, the operation the package calls), for NumPy 2, where the
    package's own decoding step fails. The package's parameters: per severity an ImageMagick
    ``(radius, sigma)`` pair, and an angle drawn uniformly in [-45, 45] degrees from NumPy's
    global generator; as an augmentation, radius and sigma drawn uniformly between the
    mildest and the strongest severity's, before the angle.

    Args:
        severity_params: The package's ``(radius, sigma)`` pairs, mildest first.
    """

    def __init__(self, severity_params) -> None:
        self.severity_params = [tuple(p) for p in severity_params]

    def apply(self, img: Image.Image, severity: int = -1, augmentation: bool = False) -> np.ndarray:
        """``img`` (PIL RGB) blurred: uint8 ``(H, W, 3)``; ``severity`` 0 (mildest) to 4."""
        from wand.image import Image as WandImage

        if augmentation:
            (r0, s0), (r1, s1) = self.severity_params[0], self.severity_params[-1]
            radius, sigma = np.random.uniform(r0, r1), np.random.uniform(s0, s1)
        else:
            radius, sigma = self.severity_params[severity]
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="PNG")
        with WandImage(blob=buf.getvalue()) as w:
            w.motion_blur(radius=float(radius), sigma=float(sigma), angle=float(np.random.uniform(-45, 45)))
            blob = w.make_blob("png")
        return np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"), dtype=np.uint8)


def _fromstring_removed() -> bool:
    """Whether NumPy's binary ``fromstring`` is gone (NumPy 2), which the package's motion blur calls."""
    try:
        np.fromstring(b"\0", np.uint8)
    except (ValueError, AttributeError):
        return True
    return False


def load_corruptions(dataset: str = "dermamnist") -> tuple[dict[str, Any], dict[str, str]]:
    """The ``medmnistc`` corruptions of ``dataset`` that run here, by name (registry order),
    and those that do not, with the reason (tried once on a 224-px test image). The
    package's motion blur, where NumPy 2 breaks it, is replaced by :class:`WandMotionBlur`.

    Raises:
        ImportError: ``medmnistc`` (or Wand, which its registry imports) is not installed;
            the message says how to install them.
    """
    try:
        from medmnistc.corruptions.registry import CORRUPTIONS_DS
    except ImportError as e:
        raise ImportError(f"the robustness experiment needs the medmnistc package: {INSTALL} ({e})") from e
    if dataset not in CORRUPTIONS_DS:
        raise ValueError(f"medmnistc has no corruptions for {dataset!r}; it has {sorted(CORRUPTIONS_DS)}")
    probe = np.random.default_rng(0).integers(0, 256, (1, 3, 28, 28), dtype=np.uint8)
    usable, unusable = {}, {}
    for name, c in CORRUPTIONS_DS[dataset].items():
        if type(c).__name__ == "MotionBlur" and _fromstring_removed():
            c = WandMotionBlur(c.severity_params)
        try:
            corrupt(torch.from_numpy(probe), c, 1, seed=0)
        except Exception as e:  # noqa: BLE001 - any failure of a third-party corruption leaves it out, with its reason
            unusable[name] = f"{type(e).__name__}: {e}"
        else:
            usable[name] = c
    return usable, unusable


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """NumPy's and Python's global generators (which ``medmnistc`` draws from) seeded for
    the block, and restored after it: the caller's random state is left as it was."""
    np_state, py_state = np.random.get_state(), random.getstate()
    np.random.seed(seed % 2**32)
    random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def _roundtrip(img: np.ndarray, work_size: int, fn) -> np.ndarray:
    """``fn`` applied to ``img`` (uint8 ``(H, W, 3)``) at ``work_size``, back at ``(H, W)``."""
    h, w = img.shape[:2]
    pil = Image.fromarray(img)
    if (h, w) != (work_size, work_size):
        pil = pil.resize((work_size, work_size), Image.BILINEAR)
    out = np.asarray(fn(pil), dtype=np.uint8)
    if out.shape != (work_size, work_size, 3):
        raise ValueError(f"a corruption returned shape {out.shape}, expected ({work_size}, {work_size}, 3)")
    if (h, w) != (work_size, work_size):
        out = np.asarray(Image.fromarray(out).resize((w, h), Image.BOX))
    return out


def corrupt(images: Tensor, corruption: Any, severity: int, seed: int, work_size: int = 224) -> Tensor:
    """One ``medmnistc`` corruption at one severity on every image.

    Args:
        images: uint8 ``(N, 3, S, S)`` on the CPU.
        corruption: A ``medmnistc`` corruption object (``load_corruptions()[0][name]``).
        severity: 1 (mildest) to 5.
        seed: Seeds the package's random draws (noise, character positions); the caller's
            random state is restored afterwards.
        work_size: Side the corruption is applied at (see the module's note).

    Returns:
        uint8 ``(N, 3, S, S)``.
    """
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be 1 to 5, got {severity}")
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be uint8 (N, 3, S, S), got {images.dtype} {tuple(images.shape)}")
    arrays = images.permute(0, 2, 3, 1).numpy()
    with _seeded(seed):
        corruption.rng = np.random.default_rng(seed)  # impulse noise draws from this attribute
        out = [_roundtrip(a, work_size, lambda p: corruption.apply(p, severity=severity - 1)) for a in arrays]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def _map(fn, args: list, workers: int, desc: str, progress: bool) -> list:
    """``[fn(a) for a in args]`` with a progress bar, in ``workers`` spawned processes when
    more than one (forked ones can hang in OpenCV once the parent has used torch)."""
    from tqdm.auto import tqdm

    if workers <= 1:
        return [fn(a) for a in tqdm(args, desc=desc, disable=not progress)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(tqdm(pool.map(fn, args), total=len(args), desc=desc, disable=not progress))


def _task(args: tuple) -> Tensor:
    return corrupt(*args)


def _cache_file(images: Tensor, names: list[str], seed: int, work_size: int, cache_dir: str | os.PathLike) -> str:
    h = hashlib.sha1(images.numpy().tobytes())
    h.update(repr((names, seed, work_size)).encode())
    try:
        from importlib.metadata import version

        h.update(version("medmnistc").encode())
    except Exception:  # noqa: BLE001 - no version: the key is the images and parameters alone
        pass
    return os.path.join(cache_dir, f"medmnistc-{h.hexdigest()[:16]}.pt")


def corrupted_sets(images: Tensor, corruptions: Mapping[str, Any], seed: int = 0, work_size: int = 224, workers: int = 2,
                   cache_dir: str | os.PathLike | None = None, progress: bool = True) -> dict[tuple[str, int], Tensor]:  # fmt: skip
    """Every corruption at severities 1-5 on ``images``: ``{(name, severity): uint8 (N, 3, S, S)}``.

    Each (corruption, severity) is seeded on its own (``seed`` plus its position), so the
    result does not depend on ``workers``. With ``cache_dir``, the sets are kept in one file
    per images, corruptions, seed and package version (written atomically) and read back on
    the next call.
    """
    names = list(corruptions)
    file = _cache_file(images, names, seed, work_size, cache_dir) if cache_dir is not None else None
    if file is not None and os.path.exists(file):
        return torch.load(file)
    tasks = [(name, sev) for name in names for sev in range(1, 6)]
    args = [(images, corruptions[name], sev, seed + 1000 * i + sev, work_size) for i, name in enumerate(names) for sev in range(1, 6)]
    out = dict(zip(tasks, _map(_task, args, workers, "corrupting", progress)))
    if file is not None:
        os.makedirs(os.path.dirname(file), exist_ok=True)
        tmp = f"{file}.{os.getpid()}.tmp"
        torch.save(out, tmp)
        os.replace(tmp, file)
    return out


def _augment_chunk(args: tuple) -> np.ndarray:
    arrays, corruptions, seed, work_size = args
    from medmnistc.augmentation import AugMedMNISTC

    aug = AugMedMNISTC(dict(corruptions))
    with _seeded(seed):
        return np.stack([_roundtrip(a, work_size, aug) for a in arrays])


def augmentation_pool(images: Tensor, corruptions: Mapping[str, Any], k: int, seed: int = 0, work_size: int = 224,
                      workers: int = 2, progress: bool = True) -> Tensor:  # fmt: skip
    """``k`` independent draws of the package's training augmentation (``AugMedMNISTC``:
    per image, one corruption chosen uniformly among ``corruptions`` and the identity, at an
    intensity drawn uniformly between its mildest and harshest severity) for every image:
    uint8 ``(k, N, 3, S, S)``. Made once, before training, because at 224 px the draws cost
    about 6 ms an image on one core (ten times a 28-px training step)."""
    arrays = images.permute(0, 2, 3, 1).numpy()
    chunks = [(arrays[i : i + 256], corruptions, seed + 7919 * d + i, work_size) for d in range(k) for i in range(0, len(arrays), 256)]
    parts = _map(_augment_chunk, chunks, workers, "AugMedMNISTC draws", progress)
    per_draw = len(parts) // k
    draws = [np.concatenate(parts[d * per_draw : (d + 1) * per_draw]) for d in range(k)]
    return torch.from_numpy(np.stack(draws)).permute(0, 1, 4, 2, 3).contiguous()


class MedMNISTCPool(Callback):
    """Swaps a training loader's images for one draw of an :func:`augmentation_pool` each
    epoch (draw ``epoch % k``), and puts the clean images back after the fit. A dermlearn
    callback: ``learn.fit(..., cbs=[MedMNISTCPool(pool_store)])``.

    Args:
        stores: uint8 ``(k, M, 3, S, S)``: ``k`` versions of the training loader's whole
            image store (``dls.train.dataset.store``; the rows that are not training items
            may stay clean). Validation reads its own store and stays clean.
    """

    def __init__(self, stores: Tensor) -> None:
        super().__init__()
        self.stores = stores
        self._clean: Tensor | None = None

    def before_fit(self) -> None:
        self._clean = self.learn.dls.train.dataset.store
        if self.stores.shape[1:] != self._clean.shape:
            raise ValueError(f"pool stores have shape {tuple(self.stores.shape[1:])}, the training store {tuple(self._clean.shape)}")

    def before_epoch(self) -> None:
        self.learn.dls.train.dataset.store = self.stores[self.learn.epoch % len(self.stores)]

    def after_fit(self) -> None:
        self.release()

    def release(self) -> None:
        """The clean images back, also when the fit raised."""
        if self._clean is not None:
            self.learn.dls.train.dataset.store = self._clean
            self._clean = None


def summary_errors(errors: Mapping[str, list[float]], clean_error: float, dataset: str = "dermamnist") -> dict[str, float]:
    """The MedMNIST-C paper's summary of balanced errors (``1 - balanced accuracy``): BE, the
    mean over corruptions of each corruption's mean error over severities divided by
    AlexNet's, and rBE, the same for the error's rise over the clean error. The AlexNet
    errors are the package's (``medmnistc.utils.baselines``, measured at 224 px).

    Args:
        errors: Per corruption, the balanced error at each severity.
        clean_error: The balanced error on the clean images.
    """
    from medmnistc.utils.baselines import BASELINES

    base = BASELINES[dataset]
    be, rbe = [], []
    for name, errs in errors.items():
        ref = base["raw_scores"][name]
        be.append(float(np.mean(errs)) / ref)
        rbe.append((float(np.mean(errs)) - clean_error) / (ref - base["clean_score"]))
    return {"BE": float(np.mean(be)), "rBE": float(np.mean(rbe))}
