"""The public API is explicit and importable."""

from __future__ import annotations

import dermlearn


def test_all_names_exist_and_are_sorted_uniquely():
    names = dermlearn.__all__
    assert len(names) == len(set(names))
    for n in names:
        assert hasattr(dermlearn, n), n
    assert isinstance(dermlearn.__version__, str)


def test_core_entry_points_are_public():
    for n in ("Learner", "Callback", "DataLoaders", "create_model", "lr_find", "EarlyStopping", "SaveModelCallback",
              "ParamScheduler", "BCEWithLogitsOneHot", "make_lesions", "accuracy", "balanced_accuracy"):
        assert n in dermlearn.__all__


def test_import_and_cli_help_do_not_load_torch():
    """`import dermlearn`, `import dermlearn.cli` and `dermlearn --help/--version` import
    neither torch nor torchvision (7-8 s on 2 CPU cores); a public name loads its module on
    first use."""
    import subprocess
    import sys

    code = ("import sys, contextlib, io, dermlearn, dermlearn.cli\n"
            "for argv in (['--help'], ['--version'], ['train', '--help']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "        dermlearn.cli.main(argv)\n"
            "print(sorted(m for m in ('torch', 'torchvision', 'numpy', 'pandas', 'matplotlib') if m in sys.modules))\n"
            "dermlearn.Learner\n"
            "print('torch' in sys.modules, 'Learner' in vars(dermlearn))\n")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["[]", "True True"]


def test_unknown_public_name_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="has no attribute 'Lerner'"):
        dermlearn.Lerner  # noqa: B018
    assert set(dermlearn.__all__) <= set(dir(dermlearn))
