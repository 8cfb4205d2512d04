"""dermlearn: train, interpret and harden classifiers for fine-grained clinical skin photos.

The public API is exactly ``__all__`` below (tested in ``tests/test_api.py``).
"""

from . import transforms
from .bootstrap import bootstrap_ci
from .calibration import fit_temperature
from .callback import (
    EVENTS,
    Callback,
    CancelBackwardException,
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    CancelStepException,
    CancelTrainException,
    CancelValidException,
)
from .checkpoint import Checkpoint
from .data import (
    BatchAugment,
    ClassWeightedSampler,
    DermData,
    DynamicBalance,
    grouped_split,
    inverse_frequency_weights,
    stratified_split,
)
from .dataloaders import IMAGENET_MEAN, IMAGENET_STD, DataLoaders, Normalize
from .datasets import LESION_CLASSES, SyntheticLesions, make_lesions, synthetic_dataloaders
from .export import load_learner
from .guard import NonFiniteGuard
from .interpret import (
    GradCAM,
    GuidedBackprop,
    GuidedGradCAM,
    Interpretation,
    leading_pairs,
    logit_diff,
    most_confused,
)
from .learner import Learner, default_device
from .losses import BCEWithLogitsOneHot, CrossEntropy
from .lr_finder import LRFinder, LRFindResult, lr_find, minimum, slide, steep, valley
from .metrics import (
    TopK,
    accuracy,
    balanced_accuracy,
    calibration_bins,
    confusion_matrix,
    expected_calibration_error,
    macro_f1,
    on_probabilities,
    per_class_auc,
    per_class_recall,
    roc_auc,
    roc_curve,
    top_k_accuracy,
)
from .models import ARCHITECTURES, DermModel, create_head, create_model
from .optim import adamw, sgd
from .precision import ChannelsLast, MixedPrecision
from .progress import ProgressCallback
from .recorder import Recorder
from .schedule import (
    ParamScheduler,
    SchedCos,
    SchedExp,
    SchedLin,
    SchedNo,
    SchedPoly,
    combine_scheds,
    even_mults,
)
from .seed import set_seed
from .tracker import EarlyStopping, SaveModelCallback, TrackerCallback

__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES",
    "EVENTS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LESION_CLASSES",
    "BCEWithLogitsOneHot",
    "BatchAugment",
    "Callback",
    "CancelBackwardException",
    "CancelBatchException",
    "CancelEpochException",
    "CancelFitException",
    "CancelStepException",
    "CancelTrainException",
    "CancelValidException",
    "ChannelsLast",
    "Checkpoint",
    "ClassWeightedSampler",
    "CrossEntropy",
    "DataLoaders",
    "DermData",
    "DermModel",
    "DynamicBalance",
    "EarlyStopping",
    "GradCAM",
    "GuidedBackprop",
    "GuidedGradCAM",
    "Interpretation",
    "LRFindResult",
    "LRFinder",
    "MixedPrecision",
    "Learner",
    "NonFiniteGuard",
    "Normalize",
    "ParamScheduler",
    "ProgressCallback",
    "Recorder",
    "SaveModelCallback",
    "SchedCos",
    "SchedExp",
    "SchedLin",
    "SchedNo",
    "SchedPoly",
    "SyntheticLesions",
    "TopK",
    "TrackerCallback",
    "__version__",
    "accuracy",
    "adamw",
    "balanced_accuracy",
    "bootstrap_ci",
    "calibration_bins",
    "combine_scheds",
    "confusion_matrix",
    "create_head",
    "create_model",
    "default_device",
    "even_mults",
    "expected_calibration_error",
    "fit_temperature",
    "grouped_split",
    "inverse_frequency_weights",
    "leading_pairs",
    "logit_diff",
    "load_learner",
    "lr_find",
    "macro_f1",
    "make_lesions",
    "minimum",
    "most_confused",
    "on_probabilities",
    "per_class_auc",
    "per_class_recall",
    "roc_auc",
    "roc_curve",
    "set_seed",
    "sgd",
    "slide",
    "steep",
    "stratified_split",
    "synthetic_dataloaders",
    "top_k_accuracy",
    "transforms",
    "valley",
]
