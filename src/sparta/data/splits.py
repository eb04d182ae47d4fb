"""Held-out validation splits cut from a training set (never tune on the test set)."""

from __future__ import annotations

import dataclasses

import torch

from .base import ImageDataset


def train_val_split(
    ds: ImageDataset,
    val_fraction: float = 0.1,
    val_size: int | None = None,
    seed: int = 0,
) -> tuple[ImageDataset, ImageDataset]:
    """Split ``ds`` into disjoint ``(train, val)`` parts that together cover it.

    ``val_size`` samples (or ``round(val_fraction * len(ds))``, at least one) go to
    validation, chosen by a permutation seeded with ``seed``; both parts keep the original
    ``indices`` and their sample order, and ``val`` has ``split="val"``.
    """
    n = len(ds)
    if val_size is None:
        if not 0.0 < float(val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        val_size = max(1, round(float(val_fraction) * n))
    if not 0 < val_size < n:
        raise ValueError(
            f"val_size must be in [1, {n - 1}] for a dataset of {n} samples, got {val_size}"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val = ds.subset(perm[:val_size].sort().values)
    train = ds.subset(perm[val_size:].sort().values)
    return train, dataclasses.replace(val, split="val")
