"""Sphinx configuration: Markdown pages (MyST), notebooks (MyST-NB, not executed here: the
tests run them), API reference from the docstrings (autodoc + napoleon, Google style).

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (tests/test_docs.py
does this with warnings as errors)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dermlearn  # noqa: E402

project = "dermlearn"
author = "the dermlearn authors"
copyright = "2026, the dermlearn authors"
release = version = dermlearn.__version__

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "results/**", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
nb_execution_mode = "off"

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
