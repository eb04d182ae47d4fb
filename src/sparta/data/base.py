"""In-memory image datasets: tensors in pixel space [0, 1], NCHW, with their metadata."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset, without loading it."""

    name: str
    input_shape: tuple[int, int, int]  # (C, H, W)
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...] = ()

    @property
    def channels(self) -> int:
        """Number of image channels C."""
        return self.input_shape[0]

    @property
    def size(self) -> int:
        """Image height H (images are square in every built-in dataset)."""
        return self.input_shape[1]


@dataclass(eq=False)
class ImageDataset:
    """Images ``x`` (float32 in [0,1], N x C x H x W) and labels ``y`` (int64, N).

    ``indices`` are positions in the original split this dataset was cut from, so that
    subsets (forget sets, poisoned samples, validation splits) can be saved and audited.
    """

    x: torch.Tensor
    y: torch.Tensor
    info: DatasetInfo
    split: str = "train"
    indices: torch.Tensor = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.x.ndim != 4:
            raise ValueError(f"images must be N x C x H x W, got shape {tuple(self.x.shape)}")
        if len(self.x) != len(self.y):
            raise ValueError(f"{len(self.x)} images but {len(self.y)} labels")
        if self.indices is None:
            self.indices = torch.arange(len(self.y))
        elif len(self.indices) != len(self.y):
            raise ValueError(f"{len(self.indices)} indices but {len(self.y)} labels")

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.info.name!r}, split={self.split!r}, n={len(self)}, "
            f"shape={tuple(self.x.shape[1:])}, num_classes={self.info.num_classes})"
        )

    # metadata passthrough, so a dataset can stand wherever a DatasetInfo is expected
    @property
    def name(self) -> str:
        return self.info.name

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.info.input_shape

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def mean(self) -> tuple[float, ...]:
        return self.info.mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.info.std

    @property
    def classes(self) -> tuple[str, ...]:
        return self.info.classes

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]

    def subset(self, idx: Sequence[int] | torch.Tensor) -> ImageDataset:
        """The samples at positions ``idx`` (of this dataset), keeping original indices."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= len(self)):
            raise ValueError(
                f"subset indices must lie in [0, {len(self)}), "
                f"got {int(idx.min())}..{int(idx.max())}"
            )
        return ImageDataset(
            self.x[idx.to(self.x.device)],
            self.y[idx.to(self.y.device)],
            self.info,
            self.split,
            self.indices[idx.to(self.indices.device)],
        )

    def take(self, n: int, seed: int = 0) -> ImageDataset:
        """A seeded random subset of ``n`` samples."""
        if not 0 < n <= len(self):
            raise ValueError(f"count must be in [1, {len(self)}], got {n}")
        g = torch.Generator().manual_seed(seed)
        return self.subset(torch.randperm(len(self), generator=g)[:n].sort().values)

    def by_class(self, classes: int | Sequence[int], keep: bool = True) -> ImageDataset:
        """Samples whose label is in ``classes`` (or, with ``keep=False``, is not)."""
        cls = torch.as_tensor([classes] if isinstance(classes, int) else list(classes))
        bad = [int(c) for c in cls if not 0 <= int(c) < self.num_classes]
        if bad:
            raise ValueError(f"class {bad[0]} does not exist; allowed 0..{self.num_classes - 1}")
        hit = torch.isin(self.y, cls.to(self.y.device))
        return self.subset(torch.nonzero(hit if keep else ~hit).flatten().cpu())

    def to(self, device: torch.device | str) -> ImageDataset:
        """The same samples with ``x`` and ``y`` on ``device`` (indices stay put)."""
        return ImageDataset(
            self.x.to(device), self.y.to(device), self.info, self.split, self.indices
        )

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` batches sliced from the tensors (no per-sample assembly).

        ``rank``/``world_size`` shard every global batch as :func:`iterate` does.
        """
        yield from iterate(
            self.x, self.y, batch_size, shuffle, generator, drop_last, rank, world_size
        )


def iterate(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of a global size ``batch_size``, in order or shuffled by ``generator``.

    With ``world_size > 1`` each rank gets its contiguous share of every global batch
    (shares differ by at most one sample), so the ranks together see exactly what one
    process sees. A final global batch smaller than ``world_size`` is skipped on every
    rank alike, so no rank ever gets an empty batch and all ranks yield equally often.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    if len(x) != len(y):
        raise ValueError(f"{len(x)} images but {len(y)} labels")
    n = len(y)
    order = torch.randperm(n, generator=generator) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, n)
        if world_size > 1:
            m = end - start
            if m < world_size:
                continue
            start, end = start + rank * m // world_size, start + (rank + 1) * m // world_size
        if order is None:
            yield x[start:end], y[start:end]
        else:
            idx = order[start:end].to(x.device)
            yield x[idx], y[idx.to(y.device)]
