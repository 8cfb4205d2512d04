"""Decoding image files: colour modes, 16-bit, EXIF orientation, unreadable files."""


from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dermlearn.data import (
    UnreadableImage,
    load_image,
)


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))


def _png(path, arr, mode=None):
    Image.fromarray(arr, mode).save(path)
    return path


# ---------------------------------------------------------------------------- decoding
def test_colour_modes_16bit_and_exif(tmp_path):
    gray = load_image(_png(tmp_path / "g.png", np.full((10, 12), 77, np.uint8)))
    assert gray.mode == "RGB" and np.asarray(gray)[0, 0].tolist() == [77, 77, 77]
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    assert np.asarray(load_image(_png(tmp_path / "a.png", rgba, "RGBA")))[0, 0].tolist() == [200, 0, 0]
    sixteen = np.array([[0, 32768, 65535]], dtype=np.uint16).repeat(4, 0)
    Image.fromarray(sixteen).save(tmp_path / "s.png")
    assert Image.open(tmp_path / "s.png").mode.startswith("I")
    assert np.asarray(load_image(tmp_path / "s.png"))[0, :, 0].tolist() == [0, 128, 255]
    # EXIF orientation 6 (rotate 90 degrees clockwise to display): 40x20 stored -> 20x40 shown
    img = Image.new("RGB", (40, 20), (10, 20, 30))
    img.paste((250, 0, 0), (0, 0, 5, 5))  # red square top-left of the stored image
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(tmp_path / "r.jpg", exif=exif, quality=95)
    up = load_image(tmp_path / "r.jpg")
    assert up.size == (20, 40)
    a = np.asarray(up)
    assert a[2, -3, 0] > 200 and a[2, 2, 0] < 100  # the red corner moved to the top right


def test_unreadable_files_are_reported_by_path(tmp_path):
    good = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good, "JPEG")
    (tmp_path / "trunc.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    for name, reason in [("trunc.jpg", "truncated"), ("zero.png", "empty"), ("text.png", "not an image"), ("corrupt.png", "")]:
        with pytest.raises(UnreadableImage, match=name) as e:
            load_image(tmp_path / name)
        assert reason in e.value.reason
