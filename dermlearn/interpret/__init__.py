"""Interpretation: Grad-CAM, Guided Backprop, Guided Grad-CAM, confusion-pair analysis."""

from .attribution import Attribution, checkerboard_share, normalize_maps
from .confusion import leading_pairs, most_confused
from .explain import Explanation, explain
from .gradcam import GradCAM, GuidedGradCAM, default_cam_layer
from .guided_backprop import GuidedBackprop, GuideReLUs
from .interpretation import Interpretation, gbp_image
from .model_guard import ModelGuard
from .report import write_interpretation
from .targets import logit_diff

__all__ = [
    "Attribution",
    "checkerboard_share",
    "Explanation",
    "GradCAM",
    "GuideReLUs",
    "GuidedBackprop",
    "GuidedGradCAM",
    "Interpretation",
    "ModelGuard",
    "default_cam_layer",
    "explain",
    "gbp_image",
    "leading_pairs",
    "logit_diff",
    "most_confused",
    "normalize_maps",
    "write_interpretation",
]
