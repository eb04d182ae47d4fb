"""ImageDataset and iterate: validation, subsets, batching and rank sharding."""

from __future__ import annotations

import pytest
import torch

from sparta.data import DatasetInfo, ImageDataset, iterate

INFO = DatasetInfo("toy", (1, 2, 2), 3, (0.5,), (0.25,), ("a", "b", "c"))


def toy(n: int = 10) -> ImageDataset:
    x = torch.arange(n * 4, dtype=torch.float32).view(n, 1, 2, 2) / (n * 4)
    return ImageDataset(x, torch.arange(n) % 3, INFO)


def test_metadata_passthrough_and_repr() -> None:
    ds = toy()
    assert (ds.name, ds.input_shape, ds.num_classes) == ("toy", (1, 2, 2), 3)
    assert ds.mean == (0.5,) and ds.std == (0.25,) and ds.classes == ("a", "b", "c")
    assert INFO.channels == 1 and INFO.size == 2
    assert torch.equal(ds.indices, torch.arange(10))
    assert repr(ds) == (
        "ImageDataset(name='toy', split='train', n=10, shape=(1, 2, 2), num_classes=3)"
    )


def test_validation_errors() -> None:
    with pytest.raises(ValueError, match="N x C x H x W"):
        ImageDataset(torch.zeros(4, 2, 2), torch.zeros(4, dtype=torch.long), INFO)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        ImageDataset(torch.zeros(4, 1, 2, 2), torch.zeros(3, dtype=torch.long), INFO)
    with pytest.raises(ValueError, match="2 indices but 4 labels"):
        ImageDataset(
            torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.long), INFO, indices=torch.arange(2)
        )


def test_subset_keeps_original_indices() -> None:
    ds = toy()
    a = ds.subset([7, 2, 9])
    b = a.subset([2, 0])
    assert b.indices.tolist() == [9, 7]
    assert torch.equal(b.x, ds.x[[9, 7]]) and torch.equal(b.y, ds.y[[9, 7]])
    assert len(ds.subset([])) == 0
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        a.subset([3])
    with pytest.raises(ValueError):
        a.subset([-1])


def test_take_is_seeded_sorted_and_unique() -> None:
    ds = toy(50)
    a, b, c = ds.take(10, seed=1), ds.take(10, seed=1), ds.take(10, seed=2)
    assert torch.equal(a.indices, b.indices) and not torch.equal(a.indices, c.indices)
    assert a.indices.tolist() == sorted(set(a.indices.tolist()))
    for bad in (0, 51):
        with pytest.raises(ValueError, match=str(bad)):
            ds.take(bad)


def test_by_class() -> None:
    ds = toy(12)
    kept, dropped = ds.by_class([0, 2]), ds.by_class(1, keep=False)
    assert set(kept.y.tolist()) == {0, 2} and len(kept) == 8
    assert torch.equal(kept.indices, dropped.indices)
    with pytest.raises(ValueError, match="class 3 does not exist; allowed 0..2"):
        ds.by_class(3)


def test_batches_in_order_with_partial_and_drop_last() -> None:
    ds = toy(10)
    sizes = [len(y) for _, y in ds.batches(4)]
    assert sizes == [4, 4, 2]
    assert torch.equal(torch.cat([x for x, _ in ds.batches(4)]), ds.x)
    assert [len(y) for _, y in ds.batches(4, drop_last=True)] == [4, 4]
    with pytest.raises(ValueError, match="batch_size must be positive"):
        next(ds.batches(0))


def test_shuffled_epoch_covers_every_sample_once_and_is_seeded() -> None:
    n = 103
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1)
    y = torch.arange(n)

    def epoch(seed: int) -> list[int]:
        g = torch.Generator().manual_seed(seed)
        out = []
        for xb, yb in iterate(x, y, 16, shuffle=True, generator=g):
            assert torch.equal(xb.flatten().long(), yb)  # images and labels stay paired
            out += yb.tolist()
        return out

    a = epoch(0)
    assert sorted(a) == list(range(n)) and a != list(range(n))
    assert a == epoch(0) and a != epoch(1)


@pytest.mark.parametrize("n,batch,world", [(37, 10, 2), (37, 10, 3), (41, 8, 4), (9, 9, 4)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_rank_shards_partition_each_global_batch(
    n: int, batch: int, world: int, shuffle: bool
) -> None:
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1)
    y = torch.arange(n)

    def run(rank: int, ws: int) -> list[list[int]]:
        g = torch.Generator().manual_seed(5)
        return [yb.tolist() for _, yb in iterate(x, y, batch, shuffle, g, rank=rank, world_size=ws)]

    single = run(0, 1)
    shards = [run(r, world) for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # every rank steps equally often
    for step, ranks in enumerate(zip(*shards, strict=True)):
        assert all(len(r) > 0 for r in ranks)
        assert max(map(len, ranks)) - min(map(len, ranks)) <= 1
        assert sum(ranks, []) == single[step]  # contiguous shares, in rank order
    # only a final global batch smaller than world_size may be skipped
    skipped = single[len(shards[0]) :]
    assert len(skipped) <= 1 and all(len(b) < world for b in skipped)


def test_iterate_rejects_bad_rank() -> None:
    x, y = torch.zeros(4, 1, 1, 1), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="rank must be in"):
        next(iterate(x, y, 2, rank=2, world_size=2))
    with pytest.raises(ValueError, match="world_size"):
        next(iterate(x, y, 2, world_size=0))


def test_batches_shard_like_iterate() -> None:
    ds = ImageDataset(torch.zeros(10, 1, 2, 2), torch.arange(10), INFO)
    parts = [[yb.tolist() for _, yb in ds.batches(4, rank=r, world_size=2)] for r in range(2)]
    assert parts == [[[0, 1], [4, 5], [8]], [[2, 3], [6, 7], [9]]]
