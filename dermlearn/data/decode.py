"""Decode image files robustly into presized uint8 RGB tensors.

Every file goes through Pillow: EXIF orientation is applied; grayscale, palette, RGBA
(alpha dropped), CMYK and 16-bit images are converted to 8-bit RGB (16-bit values scaled
by 255/65535); JPEGs are decoded at a reduced scale when that is enough for the target
size (``Image.draft``). Truncated, zero-byte, corrupt and non-image files raise
:class:`UnreadableImage` with the path and the reason.

Presizing keeps the aspect ratio: the shorter side is resized to ``size`` and the centre
``size x size`` square is kept (no distortion).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps
from torch import Tensor

__all__ = ["IMAGE_SOURCES", "UnreadableImage", "image_item", "load_image", "mask_item", "presize_geometry", "presize_image"]

ImageFile.LOAD_TRUNCATED_IMAGES = False
Image.MAX_IMAGE_PIXELS = 300_000_000  # large dermoscopy scans are fine; decompression bombs are not

IMAGE_SOURCES: tuple[type, ...] = (str, os.PathLike, Image.Image)
"""What :func:`image_item` decodes, for ``isinstance``: a file path (``str`` or path-like) or a
PIL image. The API entry points that take "a tensor or an image" (``predict``, ``explain``,
``two_pass_predict``) test their argument against it."""


class UnreadableImage(ValueError):
    """A file that cannot be decoded as an image."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img).astype(np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(np.round(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img)
        arr = np.clip(np.round(arr * (255.0 if arr.max() <= 1.0 else 1.0)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if img.mode == "RGB":
        return img
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB")


def load_image(path: str | os.PathLike, draft_size: int | None = None) -> Image.Image:
    """Open ``path`` as an upright RGB PIL image.

    Args:
        path: Image file.
        draft_size: Let JPEG decoding reduce the image (by 1/2, 1/4, 1/8) as long as both
            sides stay at least this large.

    Raises:
        UnreadableImage: missing, empty, truncated, corrupt or not an image.
    """
    p = Path(path)
    try:
        if p.stat().st_size == 0:
            raise UnreadableImage(p, "empty file (0 bytes)")
        with Image.open(p) as img:
            if draft_size is not None and img.format == "JPEG":
                img.draft("RGB", (draft_size, draft_size))
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img)
    except UnreadableImage:
        raise
    except FileNotFoundError:
        raise UnreadableImage(p, "file not found") from None
    except Image.UnidentifiedImageError:
        raise UnreadableImage(p, "not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise UnreadableImage(p, f"corrupt or truncated ({type(e).__name__}: {e})") from None


def presize_geometry(w: int, h: int, size: int) -> tuple[int, int, int, int]:
    """Where :func:`presize_image` takes its square from a ``w x h`` image: the resized size
    ``(nw, nh)`` (shorter side ``size``) and the square's offset ``(left, top)`` in it."""
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    return nw, nh, (nw - size) // 2, (nh - size) // 2


def presize_image(img: Image.Image, size: int) -> Tensor:
    """Resize the shorter side to ``size`` and keep the centre square: uint8 ``(3, size, size)``."""
    w, h = img.size
    nw, nh, left, top = presize_geometry(w, h, size)
    img = img.resize((nw, nh), Image.BILINEAR, reducing_gap=2.0 if size / min(w, h) < 0.5 else None)
    img = img.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def image_item(image: str | os.PathLike | Image.Image, size: int) -> Tensor:
    """An image file or PIL image as the data pipeline stores it: upright (EXIF orientation
    applied), 8-bit RGB, shorter side resized to ``size``, centre square kept.

    Args:
        image: A file path, or a PIL image (e.g. from ``Image.open``; its EXIF orientation is
            applied here, once).
        size: Side of the result, at least 1.

    Returns:
        uint8 ``(3, size, size)``.

    Raises:
        UnreadableImage: the file cannot be decoded (names the path and why).
        TypeError: ``image`` is neither a path nor a PIL image.
        ValueError: ``size`` is below 1.
    """
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    if isinstance(image, Image.Image):
        img = _to_rgb(ImageOps.exif_transpose(image))
    elif isinstance(image, (str, os.PathLike)):
        img = load_image(image, draft_size=size)
    else:
        raise TypeError(f"expected an image file path or a PIL image, got {type(image).__name__}")
    return presize_image(img, size)


def mask_item(path: str | os.PathLike, size: int) -> Tensor:
    """A mask file (white = object) cut as :func:`image_item` cuts its image: upright, shorter
    side resized to ``size`` (nearest neighbour: no new values at the edges), centre square
    kept. Returns bool ``(size, size)``, True where the mask is above mid-grey.

    Raises:
        UnreadableImage: the file cannot be decoded.
    """
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    p = Path(path)
    try:
        with Image.open(p) as im:
            img = ImageOps.exif_transpose(im).convert("L")
    except FileNotFoundError:
        raise UnreadableImage(p, "file not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise UnreadableImage(p, f"corrupt or truncated ({type(e).__name__}: {e})") from None
    w, h = img.size
    nw, nh, left, top = presize_geometry(w, h, size)
    img = img.resize((nw, nh), Image.NEAREST).crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(img, dtype=np.uint8) > 127)
