"""Data: sources, honest splits, a decoded in-memory cache, batched device augmentation,
class balancing."""

from .augment import AugmentParams, BatchAugment, Resize
from .cache import decode_all, default_cache_dir
from .decode import UnreadableImage, load_image, presize_image
from .dermdata import DermData
from .loader import CachedItems, TensorLoader
from .sampling import (
    ClassWeightedSampler,
    DynamicBalance,
    inverse_frequency_weights,
    oversample_indices,
    recall_weights,
)
from .sources import csv_table, data_root, folder_table, unpack
from .splits import grouped_split, stratified_split

__all__ = [
    "AugmentParams",
    "BatchAugment",
    "CachedItems",
    "ClassWeightedSampler",
    "DermData",
    "DynamicBalance",
    "Resize",
    "TensorLoader",
    "UnreadableImage",
    "csv_table",
    "data_root",
    "decode_all",
    "default_cache_dir",
    "folder_table",
    "grouped_split",
    "inverse_frequency_weights",
    "load_image",
    "oversample_indices",
    "presize_image",
    "recall_weights",
    "stratified_split",
    "unpack",
]
