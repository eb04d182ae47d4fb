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


def megabatches(ds: ImageDataset, k: int, seed: int = 0) -> list[ImageDataset]:
    """Split ``ds`` into ``k`` disjoint mega-batches that together cover it: the data stream
    of anytime learning at macroscale (ALMA; APP, 2204.01640). A permutation seeded
    with ``seed`` deals the samples out; sizes differ by at most one; each part keeps the
    original ``indices`` and its sample order."""
    n = len(ds)
    if not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"k={k!r} mega-batches is not allowed; expected an integer in [1, {n}]")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return [ds.subset(part.sort().values) for part in torch.tensor_split(perm, k)]


def concat(parts: list[ImageDataset]) -> ImageDataset:
    """The samples of ``parts`` (of one dataset) one after the other, with their indices."""
    if not parts:
        raise ValueError("concat needs at least one dataset")
    first = parts[0]
    return dataclasses.replace(
        first,
        x=torch.cat([p.x for p in parts]),
        y=torch.cat([p.y for p in parts]),
        indices=torch.cat([p.indices for p in parts]),
    )
