"""The pipeline-step contract: a Step subclass is all a new correction needs for model files,
ONNX export, the command line's --correct and checkpoints; and what the built-in steps share."""

from __future__ import annotations

import pytest
import torch

import dermlearn as dl
from dermlearn.cli.learner_args import corrections
from dermlearn.modelfile.onnx import split_steps
from dermlearn.transforms import step as step_module
from dermlearn.transforms.step import RandomStep, Step, cli_steps, exportable_steps, step_from_spec
from tests.helpers import image_folder


@pytest.fixture
def registry(monkeypatch):
    """A copy of the step registry for the test: steps it defines leave nothing behind."""
    monkeypatch.setattr(step_module, "_REGISTRY", dict(step_module._REGISTRY))
    return step_module._REGISTRY


def _posterize_class():
    class Posterize(Step):
        """Keep the top ``bits`` bits of each uint8 channel value."""

        export_args = ("bits",)
        graph_exporters = ("dynamo",)
        cli_name = "posterize"

        def __init__(self, bits: int = 3) -> None:
            super().__init__()
            self.bits = bits

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            u8 = x if x.dtype == torch.uint8 else (x * 255).round().to(torch.uint8)
            return u8 & (0xFF << (8 - self.bits) & 0xFF)

    return Posterize


def test_built_in_corrections_are_offered_and_rebuilt_by_their_declarations():
    built_in = {k: c for k, c in exportable_steps().items() if c.__module__.startswith("dermlearn.")}
    assert {k for k, c in cli_steps().items() if c.__module__.startswith("dermlearn.")} == {
        "vignette", "hair", "illumination", "colour", "gamma"}  # fmt: skip
    assert {"resize", "normalize", "AdjustGamma", "AutoGamma", "CorrectIllumination", "ShadesOfGray",
            "RemoveHair", "CropVignette"} == built_in.keys()  # fmt: skip
    x = (torch.rand(2, 3, 24, 24) * 255).to(torch.uint8)
    for cls in built_in.values():
        step = cls(16) if cls is dl.transforms.Resize else cls(0.8) if cls is dl.transforms.AdjustGamma else cls()
        rebuilt = step_from_spec(step.export_spec())
        assert type(rebuilt) is cls and rebuilt.export_spec() == step.export_spec()
        torch.testing.assert_close(rebuilt(x), step(x), rtol=0, atol=0)


def _tensors(params) -> list[torch.Tensor]:
    """The tensors of sampled parameters (a tensor, a tuple or a dataclass of them)."""
    if isinstance(params, torch.Tensor):
        return [params]
    values = params if isinstance(params, tuple) else vars(params).values()
    return [v for v in values if isinstance(v, torch.Tensor)]


def test_random_steps_are_not_kept_in_model_files_and_replay_their_stream():
    for cls in (dl.transforms.RandomGamma, dl.transforms.RandomIllumination, dl.transforms.RandomColourCast, dl.BatchAugment):
        assert issubclass(cls, RandomStep) and cls.export_args is None
        step = cls(seed=3) if cls is not dl.BatchAugment else cls(16, seed=3)
        with pytest.raises(TypeError, match=f"cannot export the preprocessing step {cls.__name__}"):
            step.export_spec()
        first = _tensors(step.sample(4))
        step.sample(4)
        moved_on = _tensors(step.sample(4))
        step.reset()
        assert any(not torch.equal(a, b) for a, b in zip(first, moved_on))
        for a, b in zip(first, _tensors(step.sample(4)), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_new_step_is_one_class(registry, tmp_path, monkeypatch):
    """Defining a Step subclass is all it takes: --correct offers it, a model file keeps and
    rebuilds it, the ONNX exporter puts it in the graph."""
    posterize = _posterize_class()
    assert registry["Posterize"] is posterize and cli_steps()["posterize"] is posterize
    (step,) = corrections(["posterize"])
    assert isinstance(step, posterize) and step.bits == 3
    monkeypatch.setenv("DERMLEARN_CACHE", str(tmp_path / "cache"))
    data = dl.DermData.from_folder(image_folder(tmp_path, n=30))
    dls = data.dls(bs=8, size=24, progress=False, tfms=[posterize(2)])
    learn = dl.Learner(dls, dl.create_model("simple_cnn", data.c), progress=False, device="cpu")
    loaded = dl.load_learner(learn.export(tmp_path / "m.pth"), device="cpu")
    assert loaded.meta["preprocessing"][0] == {"name": "Posterize", "bits": 2}
    assert isinstance(loaded.dls.batch_tfms[0], posterize) and loaded.dls.batch_tfms[0].bits == 2
    item = dls.valid.dataset[0][0]
    torch.testing.assert_close(loaded.predict(item)[2], learn.predict(item)[2])
    outside, inside = split_steps(list(loaded.dls.batch_tfms))
    assert outside == [] and isinstance(inside[0], posterize)
    assert split_steps(list(loaded.dls.batch_tfms), "torchscript")[0] == [loaded.dls.batch_tfms[0]]


def test_a_subclass_that_declares_nothing_is_kept_as_its_parent(registry):
    class LoudGamma(dl.transforms.AutoGamma):
        """AutoGamma that says when it runs."""

    assert "LoudGamma" not in registry and LoudGamma(0.4).export_spec() == {"name": "AutoGamma", "target": 0.4}
    assert type(step_from_spec(LoudGamma(0.4).export_spec())) is dl.transforms.AutoGamma


def test_two_steps_cannot_share_an_export_name(registry):
    class A(Step):
        export_args = ()
        export_name = "same"

    with pytest.raises(TypeError, match="two pipeline steps are exported as 'same'"):

        class B(Step):
            export_args = ()
            export_name = "same"


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="cannot rebuild preprocessing step 'Sharpen': known steps are"):
        step_from_spec({"name": "Sharpen"})
    with pytest.raises(ValueError, match="'AdjustGamma' lacks gamma"):
        step_from_spec({"name": "AdjustGamma"})
    with pytest.raises(ValueError, match="no correction is called 'sharpen'; the corrections are"):
        corrections(["sharpen"])
    with pytest.raises(ValueError, match="twice"):
        corrections(["gamma", "gamma"])


def test_correct_list_describes_the_corrections(capsys):
    from dermlearn.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "--correct", "list"])
    assert e.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(cli_steps())  # in the order they were defined
    assert any(line.startswith("gamma") and "AutoGamma" in line for line in lines)
