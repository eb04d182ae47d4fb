"""train_val_split: deterministic, disjoint, covering, keeping original indices."""

from __future__ import annotations

import pytest
import torch

from sparta.data import DatasetInfo, ImageDataset, train_val_split

INFO = DatasetInfo("toy", (1, 1, 1), 2, (0.5,), (0.5,))


def toy(n: int = 100) -> ImageDataset:
    return ImageDataset(torch.rand(n, 1, 1, 1), torch.arange(n) % 2, INFO)


def test_disjoint_covering_and_sized() -> None:
    ds = toy(100)
    train, val = train_val_split(ds, val_fraction=0.2, seed=3)
    assert (len(train), len(val)) == (80, 20)
    t, v = set(train.indices.tolist()), set(val.indices.tolist())
    assert not t & v and t | v == set(range(100))
    assert train.split == "train" and val.split == "val"
    assert torch.equal(val.x, ds.x[val.indices]) and torch.equal(val.y, ds.y[val.indices])
    assert train.indices.tolist() == sorted(t)


def test_seeded() -> None:
    ds = toy(100)
    a = train_val_split(ds, seed=0)[1].indices
    assert torch.equal(a, train_val_split(ds, seed=0)[1].indices)
    assert not torch.equal(a, train_val_split(ds, seed=1)[1].indices)
    assert len(a) == 10  # default fraction 0.1


def test_val_size_and_original_indices_of_a_subset() -> None:
    sub = toy(100).subset(torch.arange(50, 100))
    train, val = train_val_split(sub, val_size=7)
    assert len(val) == 7 and len(train) == 43
    assert set(val.indices.tolist()) | set(train.indices.tolist()) == set(range(50, 100))


@pytest.mark.parametrize("frac", [0.0, 1.0, -0.1, 1.5])
def test_bad_fraction(frac: float) -> None:
    with pytest.raises(ValueError, match="val_fraction must be in"):
        train_val_split(toy(), val_fraction=frac)


@pytest.mark.parametrize("size", [0, 100, 101])
def test_bad_size(size: int) -> None:
    with pytest.raises(ValueError, match=r"val_size must be in \[1, 99\]"):
        train_val_split(toy(), val_size=size)
