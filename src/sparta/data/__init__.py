"""Datasets in pixel space [0, 1] (NCHW, float32), splits and batch augmentations."""

from . import cifar, corruptions, digits, idx, synthetic  # noqa: F401  (register the built-in datasets)
from .adapt import as_dataset, image_folder
from .augment import Compose, HorizontalFlip, RandomCrop, parse_augment
from .base import DatasetInfo, ImageDataset, iterate
from .corruptions import CORRUPTIONS, SEVERITIES, corrupt, corrupted
from .registry import available, info, load, names, register_dataset
from .splits import megabatches, train_val_split
from .subsets import class_subset

__all__ = [
    "DatasetInfo",
    "ImageDataset",
    "as_dataset",
    "image_folder",
    "iterate",
    "load",
    "info",
    "names",
    "available",
    "register_dataset",
    "train_val_split",
    "class_subset",
    "megabatches",
    "RandomCrop",
    "HorizontalFlip",
    "Compose",
    "parse_augment",
    "CORRUPTIONS",
    "SEVERITIES",
    "corrupt",
    "corrupted",
]
