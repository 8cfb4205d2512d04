"""Data: sources, honest splits, a decoded in-memory cache, loaders, class balancing, the
training domain a model file records, and synthetic lesions for tests and demos.

``BatchAugment``, ``AugmentParams`` and ``Resize`` are pipeline steps
(:mod:`dermlearn.transforms`), named here too because :class:`DermData` builds them."""

from dermlearn.transforms import AugmentParams, BatchAugment, Resize

from .cache import decode_all, default_cache_dir
from .dataloaders import DataLoaders
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
from .synthetic import (
    CONFOUNDERS,
    LESION_CLASSES,
    SyntheticLesions,
    make_lesions,
    synthetic_dataloaders,
)

__all__ = [
    "CONFOUNDERS",
    "LESION_CLASSES",
    "AugmentParams",
    "BatchAugment",
    "CachedItems",
    "ClassWeightedSampler",
    "DataLoaders",
    "DermData",
    "DynamicBalance",
    "Resize",
    "SyntheticLesions",
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
    "make_lesions",
    "oversample_indices",
    "presize_image",
    "recall_weights",
    "stratified_split",
    "synthetic_dataloaders",
    "unpack",
]
