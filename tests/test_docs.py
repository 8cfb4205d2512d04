"""The documentation: every Python example in docs/ runs, and the site builds with warnings
as errors, with every public name and every callback documented."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import zlib

import pytest

import dermlearn as dl
from tests.helpers import REPO

DOCS = REPO / "docs"
# parts below docs/ only: a checkout under a folder called "results" must still find every page
PAGES = sorted(p for p in DOCS.rglob("*.md") if not {"_build", "results"} & set(p.relative_to(DOCS).parts))
CALLBACKS = [n for n in dl.__all__ if inspect.isclass(getattr(dl, n)) and issubclass(getattr(dl, n), dl.Callback) and n != "Callback"]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


EXAMPLES = [p for p in PAGES if python_blocks(p.read_text())]


def test_pages_with_examples_are_found():
    assert len(EXAMPLES) >= 12, [p.name for p in EXAMPLES]


def test_every_example_page_checks_what_it_shows():
    """An example that only runs shows nothing could go wrong: each page's examples assert
    at least one of the results they print or describe (and so test_docs_example_runs fails
    when one stops holding)."""
    silent = [str(p.relative_to(DOCS)) for p in EXAMPLES if not re.search(r"^\s*assert ", "".join(python_blocks(p.read_text())), flags=re.M)]
    assert not silent, f"example pages without an assert: {silent}"


@pytest.mark.parametrize("page", EXAMPLES, ids=[str(p.relative_to(DOCS)) for p in EXAMPLES])
def test_docs_example_runs(public_data_cache, page, tmp_path, monkeypatch):
    """A page's blocks run in order in one namespace, in an empty folder, as a reader would."""
    blocks = python_blocks(page.read_text())
    if any(re.search(r"^(from|import) fastai", b, flags=re.M) for b in blocks):
        pytest.importorskip("fastai", reason=f"{page.name} uses fastai, which is not installed: pip install -e '.[fastai]'")
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": "__docs__"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{page.relative_to(REPO)} (block {i + 1})", "exec"), ns)


def test_every_callback_has_a_page():
    texts = {p.stem: p.read_text() for p in (DOCS / "callbacks").glob("*.md")}
    for name in CALLBACKS:
        assert any(f"autoclass:: dermlearn.{name}\n" in t for t in texts.values()), f"no docs/callbacks page documents {name}"
    index = texts["index"]
    assert all(f"`{name}`" in index for name in CALLBACKS)


def _inventory(path) -> set[str]:
    """Object names in a Sphinx objects.inv (version 2: four header lines, then zlib)."""
    raw = path.read_bytes()
    body = raw.split(b"\n", 4)[4]
    return {line.split(" ", 1)[0] for line in zlib.decompress(body).decode().splitlines() if line}


def test_docs_site_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx", reason="the docs tools are in the dev extra: pip install -e '.[dev]'")
    pytest.importorskip("myst_nb", reason="the docs tools are in the dev extra: pip install -e '.[dev]'")
    out = tmp_path / "html"
    # the build runs the tutorials so that the site shows their outputs; here only the
    # quickstart, at its small size (test_notebooks runs every notebook)
    env = {**os.environ, "DERMLEARN_DOCS_EXECUTE": "01_quickstart", "DERMLEARN_SMALL": "1", "MPLBACKEND": "Agg",
           "DERMLEARN_CACHE": str(tmp_path / "cache")}  # fmt: skip
    r = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d", str(tmp_path / "doctrees"),
                        str(DOCS), str(out)], capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr[-5000:]
    quickstart = (out / "tutorials" / "01_quickstart.html").read_text()
    figures = re.findall(r'<img[^>]+src="(\.\./_images/[^"]+\.png)"', quickstart)
    assert len(figures) >= 2 and all((out / "tutorials" / f).stat().st_size > 5000 for f in figures), figures
    assert "cell_output" in quickstart and "valid_loss" in quickstart  # the epoch table printed by the fit
    assert "cell_output" not in (out / "tutorials" / "04_interpretation_confused_pairs.html").read_text()  # not chosen
    names = _inventory(out / "objects.inv")
    public = [n for n in dl.__all__ if n not in ("__version__", "transforms")]
    missing = [n for n in public if f"dermlearn.{n}" not in names]
    assert not missing, f"not in the API reference: {missing}"
    # every pipeline step is in the reference, under dermlearn.transforms or (BatchAugment,
    # Normalize: documented once, with the data) under dermlearn
    missing = [n for n in dl.transforms.__all__ if f"dermlearn.transforms.{n}" not in names and f"dermlearn.{n}" not in names]
    assert not missing, f"pipeline steps not in the API reference: {missing}"
    for page in ("index", "installation", "api", "callbacks/early_stopping", "tutorials/01_quickstart", "experiments"):
        assert (out / f"{page}.html").stat().st_size > 2000, page
