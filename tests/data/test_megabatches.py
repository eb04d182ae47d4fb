"""megabatches: the seeded k-way split of a training set into an ALMA stream; concat."""

from __future__ import annotations

import pytest
import torch

from sparta.data import DatasetInfo, ImageDataset, megabatches
from sparta.data.splits import concat

INFO = DatasetInfo("toy", (1, 1, 1), 2, (0.5,), (0.5,))


def toy(n: int = 103) -> ImageDataset:
    return ImageDataset(torch.rand(n, 1, 1, 1), torch.arange(n) % 2, INFO)


def test_disjoint_covering_and_balanced() -> None:
    ds = toy(103)
    parts = megabatches(ds, 4, seed=5)
    assert [len(p) for p in parts] == [26, 26, 26, 25]
    seen = [set(p.indices.tolist()) for p in parts]
    assert sum(len(s) for s in seen) == 103 and set().union(*seen) == set(range(103))
    for p in parts:
        assert torch.equal(p.x, ds.x[p.indices]) and torch.equal(p.y, ds.y[p.indices])
        assert p.indices.tolist() == sorted(p.indices.tolist())


def test_deterministic_per_seed() -> None:
    ds = toy()
    a = [p.indices for p in megabatches(ds, 5, seed=0)]
    b = [p.indices for p in megabatches(ds, 5, seed=0)]
    c = [p.indices for p in megabatches(ds, 5, seed=1)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))
    assert len(megabatches(ds, 1)[0]) == 103


@pytest.mark.parametrize("k", [0, 104, 2.5])
def test_bad_k(k) -> None:
    with pytest.raises(ValueError, match=f"k={k!r}"):
        megabatches(toy(), k)


def test_concat_keeps_samples_and_indices() -> None:
    ds = toy(10)
    a, b = megabatches(ds, 2, seed=0)
    both = concat([a, b])
    assert len(both) == 10 and both.indices.tolist() == a.indices.tolist() + b.indices.tolist()
    assert torch.equal(both.x, ds.x[both.indices])
    with pytest.raises(ValueError, match="at least one"):
        concat([])
