"""The shared latency helper: every model timed on the same inputs, interleaved, per batch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparta.models.timing import latency_by_batch, measure_latency


class _Recorder(nn.Module):
    def __init__(self, name: str, calls: list[tuple[str, int]]) -> None:
        super().__init__()
        self.name, self.calls = name, calls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.name, x.shape[0]))
        return x


def test_models_are_interleaved_and_batches_sliced() -> None:
    calls: list[tuple[str, int]] = []
    models = {"a": _Recorder("a", calls), "b": _Recorder("b", calls)}
    lat = latency_by_batch(models, torch.zeros(300, 3), (1, 256), repeats=3)
    assert set(lat) == {1, 256} and all(set(v) == {"a", "b"} for v in lat.values())
    assert all(t >= 0 for v in lat.values() for t in v.values())
    # 2 warm-up + 3 timed rounds per batch size, a then b in every round
    assert calls == [(m, b) for b in (1, 256) for _ in range(5) for m in "ab"]


def test_fewer_inputs_than_the_batch_use_all_of_them_and_repeats_must_be_positive() -> None:
    calls: list[tuple[str, int]] = []
    latency_by_batch({"a": _Recorder("a", calls)}, torch.zeros(10, 3), (256,), repeats=1)
    assert {b for _, b in calls} == {10}
    with pytest.raises(ValueError, match="repeats"):
        measure_latency({"a": nn.Identity()}, torch.zeros(1), repeats=0)
