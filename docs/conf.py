"""Sphinx configuration: Markdown pages (MyST), the tutorial notebooks (MyST-NB), API reference
from the docstrings (autodoc + napoleon, Google style).

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (tests/test_docs.py
does this with warnings as errors).

The notebooks are stored without outputs; the build runs them (in a temporary folder, at full
size, about a minute on 2 CPU cores), so that the site shows their tables and figures. One
whose data is not in ``$DERMLEARN_DATA`` (default ``../shared/data``) is shown without
outputs, and the build says so. ``DERMLEARN_DOCS_EXECUTE`` chooses: ``all`` (the default),
``none``, or notebook names separated by commas (e.g. ``01_quickstart``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dermlearn  # noqa: E402
from dermlearn.data.sources import data_root  # noqa: E402

# the notebooks run in a temporary folder: they find the data through the environment
os.environ.setdefault("DERMLEARN_DATA", str(data_root()))

project = "dermlearn"
author = "the dermlearn authors"
copyright = "2026, the dermlearn authors"
release = version = dermlearn.__version__

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "results/**", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

# what each tutorial reads beyond what it generates, relative to the data folder
TUTORIAL_DATA = {"02_transfer_learning_pad_ufes_20": "pad-ufes-20", "03_mitigation_transforms": "pad-ufes-20",
                 "04_interpretation_confused_pairs": "../reference/paper-tables.json"}  # fmt: skip


def _not_executed() -> list[str]:
    """Tutorials the build leaves without outputs: not chosen, or their data is missing."""
    names = sorted(p.stem for p in (Path(__file__).parent / "tutorials").glob("*.ipynb"))
    chosen = os.environ.get("DERMLEARN_DOCS_EXECUTE", "all").strip()
    run = names if chosen == "all" else [] if chosen == "none" else [n.strip() for n in chosen.split(",")]
    unknown = sorted(set(run) - set(names))
    if unknown:
        raise ValueError(f"DERMLEARN_DOCS_EXECUTE names no tutorial {unknown}; tutorials: {names}")
    skipped = []
    for name in names:
        needed = data_root() / TUTORIAL_DATA[name] if name in TUTORIAL_DATA else None
        if name in run and needed is not None and not needed.exists():
            print(f"docs: {name} is shown without outputs: it needs {needed.resolve()}, which is not there")
        if name not in run or (needed is not None and not needed.exists()):
            skipped.append(f"tutorials/{name}.ipynb")
    return skipped


nb_execution_mode = "auto"  # run the notebooks that have no outputs (all stored ones)
nb_execution_excludepatterns = _not_executed()
nb_execution_in_temp = True  # files they write land in a temporary folder, not in docs/
nb_execution_timeout = 900
nb_execution_raise_on_error = True

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # "Attributes:" as fields: autodoc lists the members themselves

html_theme = "alabaster"
html_title = f"dermlearn {release}"
html_static_path: list[str] = []
