"""Datasets in pixel space [0, 1] (NCHW, float32), splits and batch augmentations."""

from . import cifar, digits, idx, synthetic  # noqa: F401  (register the built-in datasets)
from .adapt import as_dataset, image_folder
from .augment import Compose, HorizontalFlip, RandomCrop, parse_augment
from .base import DatasetInfo, ImageDataset, iterate
from .registry import available, info, load, names, register_dataset
from .splits import megabatches, train_val_split

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
    "megabatches",
    "RandomCrop",
    "HorizontalFlip",
    "Compose",
    "parse_augment",
]
