"""scikit-learn's bundled 8x8 handwritten digits, split deterministically into train/test."""

from __future__ import annotations

import torch

from . import registry
from .base import DatasetInfo, ImageDataset

#: Every sample whose position falls in the last fifth of this seeded permutation is a test
#: sample, the rest are training samples: 1438 train, 359 test, disjoint, always the same.
SPLIT_SEED = 0

DIGITS_INFO = DatasetInfo(
    name="digits",
    input_shape=(1, 8, 8),
    num_classes=10,
    # computed once over the 1438 training images in [0, 1]
    mean=(0.3049,),
    std=(0.3758,),
    classes=tuple(str(i) for i in range(10)),
)


def split_positions(n: int, split: str) -> torch.Tensor:
    """Sorted positions (in scikit-learn's order) of ``split``'s samples among ``n``."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_test = n // 5
    part = perm[n - n_test :] if split == "test" else perm[: n - n_test]
    return part.sort().values


@registry.register_dataset("digits", info=DIGITS_INFO, source="bundled with scikit-learn")
def load_digits(split: str, root: str | None, download: bool) -> ImageDataset:
    """1797 grey 8x8 digit images (values 0..16 scaled to [0, 1]); needs no files."""
    from sklearn.datasets import load_digits as _sk_load_digits

    d = _sk_load_digits()
    x = torch.from_numpy(d.images).to(torch.float32).div_(16.0).unsqueeze(1)
    y = torch.from_numpy(d.target).to(torch.int64)
    pos = split_positions(len(y), split)
    return ImageDataset(x[pos].contiguous(), y[pos].contiguous(), DIGITS_INFO, split)
