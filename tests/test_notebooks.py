"""Every notebook in nbs/ runs top to bottom at its small size (DERMLEARN_SMALL=1)."""

from __future__ import annotations

import importlib.util
import os

import pytest

from tests.helpers import REPO, data_dir

NOTEBOOKS = sorted((REPO / "nbs").glob("*.ipynb"))
# what each notebook reads beyond what it generates, relative to the real-data folder (04 opens
# the study's tables in the reference folder beside it, as the notebook says)
NEEDS_DATA = {"02_transfer_learning_pad_ufes_20.ipynb": "pad-ufes-20", "03_mitigation_transforms.ipynb": "pad-ufes-20",
              "04_interpretation_confused_pairs.ipynb": "../reference/paper-tables.json"}  # fmt: skip


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4


def test_notebooks_are_what_their_generator_writes():
    """An edit made in a notebook and not in nbs/make_notebooks.py is lost the next time the
    notebooks are regenerated: the two must agree (after an edit there, run the script)."""
    nbformat = pytest.importorskip("nbformat")
    spec = importlib.util.spec_from_file_location("make_notebooks", REPO / "nbs" / "make_notebooks.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert sorted(gen.NOTEBOOKS) == [p.name for p in NOTEBOOKS]
    for path in NOTEBOOKS:
        want = gen.build(path.name)
        got = nbformat.read(path, as_version=4)
        assert [(c.cell_type, c.source) for c in got.cells] == [(c.cell_type, c.source) for c in want.cells], (
            f"{path.name} differs from what nbs/make_notebooks.py writes: edit the script and run it")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(public_data_cache, path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    needed = (data_dir() / NEEDS_DATA[path.name]).resolve() if path.name in NEEDS_DATA else None
    if needed is not None and not needed.exists():
        pytest.skip(f"{path.name} needs {needed}, which is not there")
    monkeypatch.setenv("DERMLEARN_SMALL", "1")
    monkeypatch.setenv("DERMLEARN_DATA", str(data_dir().resolve()))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError naming the failing cell
    assert os.environ["DERMLEARN_SMALL"] == "1"
