"""Batch inference over files: the same probabilities as predict, file by file, in order;
unreadable files reported; decoding in worker processes gives what decoding here gives."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import image_folder


def test_predict_files_equals_predict_file_by_file(trained, tmp_path):
    imgs = image_folder(tmp_path, n=30)
    files = sorted(imgs.rglob("*.png"))[:13]
    (tmp_path / "broken.png").write_text("not an image")
    files.insert(5, tmp_path / "broken.png")
    res = trained.predict_files(files, bs=4, num_workers=0)
    assert res.files == [str(f) for f in files]
    assert list(res.errors) == [str(tmp_path / "broken.png")] and res.errors[str(tmp_path / "broken.png")]  # the reason
    assert res.ok.tolist() == [f.name != "broken.png" for f in files]
    for f, row in zip(files, res.probs):
        if f.name == "broken.png":
            assert torch.isnan(row).all()
        else:
            torch.testing.assert_close(row, trained.predict(f, check_domain=False)[2], rtol=1e-5, atol=1e-6)
    workers = trained.predict_files(files, bs=4, num_workers=2)
    torch.testing.assert_close(workers.probs, res.probs, rtol=0, atol=0, equal_nan=True)
    assert workers.errors == res.errors


def test_only_unreadable_files_and_no_files(trained, tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    res = trained.predict_files([tmp_path / "a.png"], num_workers=0)
    assert not res.ok.any() and list(res.errors) == [str(tmp_path / "a.png")] and res.probs.shape == (1, 3)
    with pytest.raises(ValueError, match="no files"):
        trained.predict_files([])
