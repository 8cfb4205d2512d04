"""The public API is explicit and importable."""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest

import dermlearn
from dermlearn._moved import MOVED_MODULES

# The public names, as listed before the package was laid out in subpackages: each must stay.
PUBLIC_NAMES = [
    "ARCHITECTURES", "BCEWithLogitsOneHot", "BatchAugment", "Callback", "CancelBackwardException",
    "CancelBatchException", "CancelEpochException", "CancelFitException", "CancelStepException",
    "CancelTrainException", "CancelValidException", "ChannelsLast", "Checkpoint",
    "ClassWeightedSampler", "CrossEntropy", "DataLoaders", "DermData", "DermModel",
    "DynamicBalance", "EVENTS", "EarlyStopping", "GradCAM", "GuidedBackprop", "GuidedGradCAM",
    "IMAGENET_MEAN", "IMAGENET_STD", "InputDomain", "Interpretation", "LESION_CLASSES",
    "LRFindResult", "LRFinder", "Learner", "MixedPrecision", "NonFiniteGuard", "Normalize",
    "OutOfDomainWarning", "ParamScheduler", "ProgressCallback", "Recorder", "SaveModelCallback",
    "SchedCos", "SchedExp", "SchedLin", "SchedNo", "SchedPoly", "SnapshotEnsemble", "SyntheticLesions", "TimeBudget",
    "TopK", "TrackerCallback", "__version__", "accuracy", "adamw", "balanced_accuracy",
    "bootstrap_ci", "calibration_bins", "combine_scheds", "confusion_matrix", "create_head",
    "create_model", "default_device", "even_mults", "expected_calibration_error",
    "fit_temperature", "grouped_split", "inverse_frequency_weights", "leading_pairs",
    "load_learner", "logit_diff", "lr_find", "macro_f1", "make_lesions", "minimum",
    "most_confused", "on_probabilities", "per_class_auc", "per_class_recall", "roc_auc",
    "roc_curve", "set_seed", "sgd", "slide", "steep", "stratified_split", "synthetic_dataloaders",
    "top_k_accuracy", "transforms", "valley",
]  # fmt: skip

# Old module paths and the public names each had: they still import (with a warning).
OLD_MODULES = {
    "dermlearn.bootstrap": (
        "bootstrap_ci",
    ),
    "dermlearn.metrics": (
        "TopK", "accuracy", "balanced_accuracy", "calibration_bins", "confusion_matrix",
        "expected_calibration_error", "macro_f1", "metric_name", "on_probabilities",
        "per_class_auc", "per_class_recall", "roc_auc", "roc_curve", "takes_probabilities",
        "top_k_accuracy",
    ),
    "dermlearn.plots": (
        "plot_confusion_matrix", "plot_reliability", "plot_roc_curves",
    ),
    "dermlearn.calibration": (
        "fit_temperature", "temperature_nll",
    ),
    "dermlearn.cli_data": (
        "add_data_args", "data_from_args",
    ),
    "dermlearn.dataloaders": (
        "DataLoaders", "IMAGENET_MEAN", "IMAGENET_STD", "Normalize",
    ),
    "dermlearn.datasets": (
        "CONFOUNDERS", "LESION_CLASSES", "SyntheticLesions", "make_lesions",
        "synthetic_dataloaders",
    ),
    "dermlearn.domain": (
        "FEATURES", "InputDomain", "MODALITIES", "OutOfDomainWarning", "colour_features",
        "photo_thumbnail",
    ),
    "dermlearn.export": (
        "FORMAT", "export_learner", "load_learner",
    ),
    "dermlearn.onnx_export": (
        "export_onnx", "split_steps",
    ),
    "dermlearn.fastai_bridge": (
        "FastaiLoader", "fastai_dataloaders", "fastai_interpretation", "transforms_callback",
    ),
    "dermlearn.checkpoint": (
        "Checkpoint", "FORMAT", "capture_state", "load_checkpoint", "restore_state",
    ),
    "dermlearn.guard": (
        "NonFiniteGuard",
    ),
    "dermlearn.learner": (
        "GatherPreds", "Learner", "default_device",
    ),
    "dermlearn.lr_finder": (
        "LRFindResult", "LRFinder", "lr_find", "minimum", "slide", "steep", "valley",
    ),
    "dermlearn.optim": (
        "LearningRate", "OptFactory", "adamw", "get_hyper", "lr_per_group", "make_param_groups",
        "params_of", "set_hyper", "sgd", "trainable_split",
    ),
    "dermlearn.precision": (
        "ChannelsLast", "MixedPrecision",
    ),
    "dermlearn.progress": (
        "ProgressCallback",
    ),
    "dermlearn.recipes": (
        "RecipeResult", "study_recipe",
    ),
    "dermlearn.recorder": (
        "Recorder", "smooth",
    ),
    "dermlearn.schedule": (
        "ParamScheduler", "SchedCos", "SchedExp", "SchedLin", "SchedNo", "SchedPoly", "Schedule",
        "combine_scheds", "even_mults", "flat_cos_scheds", "one_cycle_scheds", "sgdr_scheds",
    ),
    "dermlearn.time_budget": (
        "TimeBudget",
    ),
    "dermlearn.tracker": (
        "EarlyStopping", "SaveModelCallback", "TrackerCallback",
    ),
    "dermlearn.data.augment": (
        "AugmentParams", "BatchAugment", "Resize",
    ),
    "dermlearn.interpret.guard": (
        "ModelGuard",
    ),
    "dermlearn.transforms.fov": (
        "Circle", "CropVignette", "crop_boxes", "crop_vignette", "detect_vignette", "field_boxes",
        "roi_box", "two_pass_predict", "vignette_box",
    ),
}  # fmt: skip


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


def test_every_public_name_stays():
    assert sorted(set(PUBLIC_NAMES) - set(dermlearn.__all__)) == []
    for name in PUBLIC_NAMES:
        assert getattr(dermlearn, name) is not None, name


@pytest.mark.parametrize("old", sorted(OLD_MODULES))
def test_old_module_paths_import_with_a_warning_naming_the_new_one(old):
    """``from dermlearn.schedule import SchedCos`` written before the layout still works for
    one release: the same objects, and a DeprecationWarning that says where they went."""
    for name in [m for m in sys.modules if m == old]:
        del sys.modules[name]  # an earlier test may have imported it: import it afresh
    with pytest.warns(DeprecationWarning, match=rf"{old} moved to dermlearn\.\w+"):
        module = importlib.import_module(old)
    new_modules = [importlib.import_module(m) for m in MOVED_MODULES[old]]
    for name in OLD_MODULES[old]:
        home = next((m for m in new_modules if hasattr(m, name)), None)
        assert home is not None and getattr(module, name) is getattr(home, name), (old, name)
    assert set(OLD_MODULES[old]) <= set(module.__all__)


def test_moved_names_and_modules_are_the_same_objects():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from dermlearn.export import load_learner
        from dermlearn.learner import Learner
        from dermlearn.transforms.fov import roi_box, two_pass_predict

        moved_attribute = dermlearn.transforms.two_pass_predict
    from dermlearn.inference import two_pass_predict as new
    from dermlearn.transforms.saliency import roi_box as new_roi

    assert Learner is dermlearn.Learner and load_learner is dermlearn.load_learner
    assert two_pass_predict is new and moved_attribute is new and roi_box is new_roi
    with pytest.warns(DeprecationWarning, match="dermlearn.transforms.two_pass_predict moved to dermlearn.inference"):
        dermlearn.transforms.two_pass_predict  # noqa: B018
    with pytest.raises(AttributeError, match="'dermlearn.transforms' has no attribute 'sharpen'"):
        dermlearn.transforms.sharpen  # noqa: B018


def test_a_module_that_never_existed_is_still_not_found():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("dermlearn.lerner")
