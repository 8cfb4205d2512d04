"""The README's notebook example runs (on a smaller size and a tiny model)."""

from __future__ import annotations

import re

from .conftest import REPO


def test_readme_python_example_runs(capsys):
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "no python example in the README"
    code = blocks[0].replace("n=1000, size=64", "n=80, size=32").replace('"resnet34"', '"simple_cnn"')
    assert "n=80" in code and "simple_cnn" in code
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)
    probs, targets = ns["probs"], ns["targets"]
    assert probs.shape == (len(targets), 5)
