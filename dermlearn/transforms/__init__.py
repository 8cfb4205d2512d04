"""The image pipeline's steps: mitigation transforms for user-submitted skin photos (gamma,
illumination, colour constancy, field of view, hair), augmentation, resize and
normalisation, all on batches ``(B, 3, H, W)``, uint8 in [0, 255] or float in [0, 1].

Each step is a :class:`~dermlearn.transforms.step.Step` (random ones a
:class:`~dermlearn.transforms.step.RandomStep`, whose ``sample``/``apply_params`` replay
parameters); the batched operations are also plain functions. Importing this package
registers every built-in step with the model-file format and the command line.
"""

from dermlearn._moved import moved_attribute

from .augment import AugmentParams, BatchAugment
from .circle import Circle
from .colour import RandomColourCast, ShadesOfGray, estimate_illuminant, shades_of_gray
from .gamma import AdjustGamma, AutoGamma, RandomGamma, adjust_gamma, auto_gamma
from .hair import RemoveHair, hair_mask, remove_hair
from .illumination import (
    CorrectIllumination,
    RandomIllumination,
    correct_illumination,
    estimate_illumination,
    illumination_ramp,
)
from .normalize import IMAGENET_MEAN, IMAGENET_STD, Normalize
from .resize import Resize
from .saliency import crop_boxes, roi_box
from .step import RandomStep, Step, cli_steps, exportable_steps, step_from_spec
from .vignette import CropVignette, crop_vignette, detect_vignette, field_boxes, vignette_box

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AdjustGamma",
    "AugmentParams",
    "AutoGamma",
    "BatchAugment",
    "Circle",
    "CorrectIllumination",
    "CropVignette",
    "Normalize",
    "RandomColourCast",
    "RandomGamma",
    "RandomIllumination",
    "RandomStep",
    "RemoveHair",
    "Resize",
    "ShadesOfGray",
    "Step",
    "adjust_gamma",
    "auto_gamma",
    "cli_steps",
    "correct_illumination",
    "crop_boxes",
    "crop_vignette",
    "detect_vignette",
    "estimate_illuminant",
    "estimate_illumination",
    "exportable_steps",
    "field_boxes",
    "hair_mask",
    "illumination_ramp",
    "remove_hair",
    "roi_box",
    "shades_of_gray",
    "step_from_spec",
    "vignette_box",
]


def __getattr__(name: str):
    return moved_attribute(__name__, name)
