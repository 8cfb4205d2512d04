"""The README's notebook example runs (on a smaller size and a tiny model)."""

from __future__ import annotations

import re

from tests.helpers import REPO


def test_readme_python_example_runs(capsys):
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "no python example in the README"
    code = blocks[0].replace("n=600, size=48", "n=80, size=32").replace('"resnet18"', '"simple_cnn"')
    assert "n=80" in code and "simple_cnn" in code and ".freeze()" not in code
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)
    probs, targets = ns["probs"], ns["targets"]
    assert probs.shape == (len(targets), 5)


def test_readme_transfer_learning_example_runs(tmp_path):
    """The second example (pretrained body frozen, head first, then discriminative rates)
    runs with a local weights file in place of the download, after the first's data."""
    import torch
    import torchvision

    text = (REPO / "README.md").read_text()
    first, second = re.findall(r"```python\n(.*?)```", text, flags=re.S)[:2]
    assert "pretrained=True" in second and "learn.freeze()" in second and "slice(" in second
    weights = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    ns: dict = {}
    exec(compile(first.split("learn = ")[0].replace("n=600, size=48", "n=80, size=32"), "README.md", "exec"), ns)
    code = second.replace('"resnet34"', '"resnet18"').replace("pretrained=True", f"pretrained={str(weights)!r}")
    exec(compile(code, "README.md", "exec"), ns)
    learn = ns["learn"]
    assert learn.recorder.group_lrs[-1][0] < learn.recorder.group_lrs[-1][-1]  # the body trains at lower rates


def test_readme_is_honest_about_freezing_and_install():
    """The example froze a randomly initialised ResNet-34 and called it "train the head
    first"; the README now freezes only pretrained bodies, gives the CPU-only install and
    how long each step takes."""
    text = (REPO / "README.md").read_text()
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        if ".freeze()" in block:
            assert "pretrained=" in block, block
    assert "https://download.pytorch.org/whl/cpu" in text
    timings = text.split("How long each step takes", 1)[1].split("\n\n", 2)[1]
    for step in ("dermlearn demo", "python -m pytest", "first notebook example", "second"):
        assert re.search(rf"\| [^|\n]*{re.escape(step)}[^|\n]* \| [^|\n]*\d+ *(s|minutes?)", timings), step
