"""Shared dataset metadata for the model tests (built directly, no data download)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from sparta.data.base import DatasetInfo

FASHION = DatasetInfo("fashion-mnist", (1, 28, 28), 10, (0.286,), (0.353,))
CIFAR = DatasetInfo("cifar10", (3, 32, 32), 10, (0.491, 0.482, 0.447), (0.247, 0.243, 0.262))
DIGITS = DatasetInfo("digits", (1, 8, 8), 10, (0.3,), (0.4,), tuple(str(i) for i in range(10)))
ALL_INFOS = (FASHION, CIFAR, DIGITS)


@pytest.fixture(params=ALL_INFOS, ids=lambda i: i.name)
def info(request: pytest.FixtureRequest) -> DatasetInfo:
    return request.param


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny forward passes are fastest single-threaded (and immune to a busy second core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
