"""A seeded, learnable synthetic image dataset of any shape: class templates plus noise."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from . import registry
from .base import DatasetInfo, ImageDataset

DEFAULT_N = {"train": 1024, "test": 256}
_SPLIT_STREAM = {"train": 1, "test": 2}


def _check(shape: Sequence[int], num_classes: int, n: int | None, noise: float) -> tuple:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"synthetic shape must be (C, H, W) of positive ints, got {shape}")
    if num_classes < 2:
        raise ValueError(f"synthetic num_classes must be >= 2, got {num_classes}")
    if n is not None and n < 1:
        raise ValueError(f"synthetic n must be >= 1, got {n}")
    if noise < 0:
        raise ValueError(f"synthetic noise must be >= 0, got {noise}")
    return shape  # type: ignore[return-value]


def synthetic_info(
    shape: Sequence[int] = (1, 28, 28),
    num_classes: int = 10,
    n: int | None = None,
    seed: int = 0,
    noise: float = 0.2,
) -> DatasetInfo:
    """Metadata of ``synthetic`` with these options (nothing is generated)."""
    c, h, w = _check(shape, num_classes, n, noise)
    return DatasetInfo(
        name="synthetic",
        input_shape=(c, h, w),
        num_classes=num_classes,
        # approximate for every shape (measured 0.494 / 0.271 with the defaults)
        mean=(0.5,) * c,
        std=(0.27,) * c,
        classes=tuple(f"class{i}" for i in range(num_classes)),
    )


@registry.register_dataset("synthetic", info=synthetic_info, source="generated from a seed")
def load_synthetic(
    split: str,
    root: str | None,
    download: bool,
    shape: Sequence[int] = (1, 28, 28),
    num_classes: int = 10,
    n: int | None = None,
    seed: int = 0,
    noise: float = 0.2,
) -> ImageDataset:
    """``n`` images (train 1024, test 256 by default) of ``num_classes`` balanced classes.

    Each class has a smooth random template (drawn from ``seed``, shared by both splits);
    a sample is its class template plus Gaussian ``noise``, clipped to [0, 1]. The splits
    draw their samples from different streams derived from ``seed``, so they differ.
    """
    info = synthetic_info(shape, num_classes, n, seed, noise)
    c, h, w = info.input_shape
    n = DEFAULT_N[split] if n is None else n
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(num_classes, c, max(1, -(-h // 4)), max(1, -(-w // 4)), generator=g)
    templates = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    g = torch.Generator().manual_seed((seed * 1_000_003 + _SPLIT_STREAM[split]) % 2**63)
    y = (torch.arange(n) % num_classes)[torch.randperm(n, generator=g)]
    x = templates[y] + noise * torch.randn(n, c, h, w, generator=g)
    return ImageDataset(x.clamp_(0.0, 1.0), y, info, split)
