"""Inference with a Learner: one image (:func:`predict`), image files in batches
(:func:`predict_files`), test-time augmentation (:func:`tta`),
temperature scaling (:func:`calibrate`) and crop-and-re-predict (:func:`two_pass_predict`).
Each takes the Learner as its first argument; the Learner's methods of the same names call
them. Batch predictions over a loader are the training loop's :meth:`~dermlearn.Learner.get_preds`."""

from .calibration import calibrate, fit_temperature, temperature_nll
from .files import FilePredictions, predict_files
from .predict import input_size, load_item, out_of_domain, predict
from .tta import tta
from .two_pass import two_pass_predict

__all__ = [
    "FilePredictions", "calibrate", "fit_temperature", "input_size", "load_item", "out_of_domain", "predict",
    "predict_files", "temperature_nll", "tta", "two_pass_predict",
]  # fmt: skip
