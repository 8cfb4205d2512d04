"""The package's house plan: the import-linter layers in pyproject.toml hold, no two modules
import each other (directly or through others, function-local imports included), no module
imports the package's ``__init__``, and every module sits in a declared layer."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp", reason="import-linter (dev extra) is not installed")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dermlearn"


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("dermlearn", cache_dir=None)


def _layers() -> list[str]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return [m.strip() for layer in contract["layers"] for m in layer.split("|")]


def test_import_linter_contracts_hold():
    from importlinter.cli import lint_imports

    assert lint_imports(config_filename=str(ROOT / "pyproject.toml")) == 0  # prints the broken contracts


def test_no_module_imports_another_that_imports_it_back(graph):
    circles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if imported != "dermlearn" and graph.chain_exists(imported=importer, importer=imported):
                circles.append(f"{importer} -> {imported} -> ... -> {importer}")
    assert circles == []


def test_a_circle_would_be_found(graph):
    """The check above can fail: with an import back from the loop's callbacks to the learner
    (what the layout removed), it finds the circle."""
    graph.add_import(importer="dermlearn.training.recorder", imported="dermlearn.training.learner")
    assert graph.chain_exists(imported="dermlearn.training.recorder", importer="dermlearn.training.learner")
    assert graph.chain_exists(imported="dermlearn.training.learner", importer="dermlearn.training.recorder")


def _imports_of_root(path: Path) -> list[str]:
    """Imports in ``path`` that load ``dermlearn/__init__`` for a name: ``import dermlearn``,
    ``from dermlearn import x``, or a relative ``from . import x`` / ``from .. import x``
    that resolves to the package itself."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [f"l.{node.lineno}: import {a.name}" for a in node.names if a.name == "dermlearn"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            if target == "dermlearn":
                found.append(f"l.{node.lineno}: from {'.' * node.level}{node.module or ''} import ...")
    return found


def test_no_module_imports_the_package_init():
    offenders = {str(p.relative_to(ROOT)): hits for p in PACKAGE.rglob("*.py")
                 if p != PACKAGE / "__init__.py" and (hits := _imports_of_root(p))}  # fmt: skip
    assert offenders == {}


def test_the_init_check_sees_each_form(tmp_path):
    pkg = ROOT / "dermlearn" / "training" / "learner.py"  # a real path for the package name
    for code in ("import dermlearn\n", "from dermlearn import Learner\n", "from .. import version\n"):
        probe = pkg.with_name("_probe_layers.py")
        probe.write_text(code)
        try:
            assert _imports_of_root(probe), code
        finally:
            probe.unlink()
    assert _imports_of_root(pkg) == []


def test_every_module_is_in_a_declared_layer(graph):
    layers = _layers()
    outside = sorted(m for m in graph.modules
                     if m != "dermlearn" and not any(m == layer or m.startswith(layer + ".") for layer in layers))  # fmt: skip
    assert outside == []
