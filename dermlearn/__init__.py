"""dermlearn: train, interpret and harden classifiers for fine-grained clinical skin photos.

The public API is exactly ``__all__`` below (tested in ``tests/test_api.py``). Names are
imported on first use (PEP 562), so that ``import dermlearn`` and the ``dermlearn`` command's
``--help`` and ``--version`` do not pay for torch and torchvision (seconds) until a name
that needs them is used: ``dermlearn.Learner`` imports the training loop then, once.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from . import _moved
from .version import __version__ as __version__

_moved.install()  # old module paths (dermlearn.learner, ...) keep working, with a warning

# module (relative to this package) -> the public names it defines
_MODULES: dict[str, tuple[str, ...]] = {
    "evaluation.bootstrap": ("bootstrap_ci",),
    "evaluation.proportion": ("wilson_interval",),
    "evaluation.subgroups": ("subgroup_metrics",),
    "interpret.pointing_game": ("pointing_hits",),
    "inference.calibration": ("fit_temperature",),
    "callback": (
        "EVENTS", "Callback", "CancelBackwardException", "CancelBatchException",
        "CancelEpochException", "CancelFitException", "CancelStepException", "CancelTrainException",
        "CancelValidException",
    ),
    "training.checkpoint": ("Checkpoint",),
    "data": (
        "BatchAugment", "ClassWeightedSampler", "DermData", "DynamicBalance", "grouped_split",
        "inverse_frequency_weights", "stratified_split",
    ),
    "data.dataloaders": ("DataLoaders",),
    "transforms.normalize": ("IMAGENET_MEAN", "IMAGENET_STD", "Normalize"),
    "data.domain": ("InputDomain", "OutOfDomainWarning"),
    "data.synthetic": ("LESION_CLASSES", "SyntheticLesions", "make_lesions", "synthetic_dataloaders"),
    "training.load_learner": ("load_learner",),
    "training.guard": ("NonFiniteGuard",),
    "interpret": (
        "GradCAM", "GuidedBackprop", "GuidedGradCAM", "Interpretation", "leading_pairs",
        "logit_diff", "most_confused",
    ),
    "training.learner": ("Learner", "default_device"),
    "losses": ("BCEWithLogitsOneHot", "CrossEntropy"),
    "training.lr_finder": ("LRFinder", "LRFindResult", "lr_find", "minimum", "slide", "steep", "valley"),
    "evaluation.metrics": (
        "TopK", "accuracy", "balanced_accuracy", "calibration_bins", "confusion_matrix",
        "expected_calibration_error", "macro_f1", "on_probabilities", "per_class_auc",
        "per_class_recall", "roc_auc", "roc_curve", "top_k_accuracy",
    ),
    "models": ("ARCHITECTURES", "DermModel", "create_head", "create_model"),
    "training.optim": ("adamw", "even_mults", "sgd"),
    "training.precision": ("ChannelsLast", "MixedPrecision"),
    "training.progress": ("ProgressCallback",),
    "training.recorder": ("Recorder",),
    "training.schedule": (
        "ParamScheduler", "SchedCos", "SchedExp", "SchedLin", "SchedNo", "SchedPoly",
        "combine_scheds",
    ),
    "seed": ("set_seed",),
    "training.time_budget": ("TimeBudget",),
    "training.snapshots": ("SnapshotEnsemble",),
    "training.run_logger": ("RunLogger",),
    "training.csv_logger": ("CSVLogger",),
    "training.tensorboard_logger": ("TensorBoardCallback",),
    "training.wandb_logger": ("WandbCallback",),
    "training.mlflow_logger": ("MLflowCallback",),
    "training.tracker": ("EarlyStopping", "SaveModelCallback", "TrackerCallback"),
}
_EXPORTS: dict[str, str] = {name: module for module, names in _MODULES.items() for name in names}
_SUBMODULES = ("transforms",)

__all__ = sorted([*_EXPORTS, *_SUBMODULES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _EXPORTS.get(name)
    if module is None:
        # a submodule used as an attribute (dl.data, dl.losses), as an eager import allowed
        if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
            return importlib.import_module(f".{name}", __name__)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
