"""Mitigation transforms for user-submitted skin photos: gamma, illumination, colour
constancy, field of view, hair. Each batched operation has a pure function on
``(B, 3, H, W)`` uint8 or float [0, 1] tensors, a deterministic module, and (where it makes
sense) a random variant whose ``sample``/``apply_params`` replay parameters
(``apply`` stays ``torch.nn.Module.apply``)."""

from .colour import RandomColourCast, ShadesOfGray, estimate_illuminant, shades_of_gray
from .fov import (
    Circle,
    CropVignette,
    crop_boxes,
    crop_vignette,
    detect_vignette,
    field_boxes,
    roi_box,
    two_pass_predict,
    vignette_box,
)
from .gamma import AdjustGamma, AutoGamma, RandomGamma, adjust_gamma, auto_gamma
from .hair import RemoveHair, hair_mask, remove_hair
from .illumination import (
    CorrectIllumination,
    RandomIllumination,
    correct_illumination,
    estimate_illumination,
    illumination_ramp,
)

__all__ = [
    "AdjustGamma",
    "AutoGamma",
    "Circle",
    "CorrectIllumination",
    "CropVignette",
    "RandomColourCast",
    "RandomGamma",
    "RandomIllumination",
    "RemoveHair",
    "ShadesOfGray",
    "adjust_gamma",
    "auto_gamma",
    "correct_illumination",
    "crop_boxes",
    "crop_vignette",
    "detect_vignette",
    "estimate_illuminant",
    "estimate_illumination",
    "field_boxes",
    "hair_mask",
    "illumination_ramp",
    "remove_hair",
    "roi_box",
    "shades_of_gray",
    "two_pass_predict",
    "vignette_box",
]
