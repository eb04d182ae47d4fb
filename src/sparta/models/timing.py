"""CPU latency of forward passes, measured the same way wherever sparta reports one (the
card's efficiency pillar, ``sparta export``): models interleaved per repeat in one process,
after a warm-up, median per model and batch size."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn


def time_ms(fn: Callable[[], Any]) -> float:
    """Wall time of one call of ``fn`` in milliseconds."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def measure_latency(
    models: dict[str, nn.Module], x: torch.Tensor, repeats: int, warmup: int = 2
) -> dict[str, float]:
    """Median forward time (ms) of each model on ``x``, the models interleaved per repeat."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.no_grad():
        for _ in range(warmup):
            for m in models.values():
                m(x)
        for _ in range(repeats):
            for k, m in models.items():
                times[k].append(time_ms(lambda m=m: m(x)))
    return {k: statistics.median(v) for k, v in times.items()}


def latency_by_batch(
    models: dict[str, nn.Module],
    x: torch.Tensor,
    batches: Iterable[int] = (1, 256),
    repeats: int = 20,
) -> dict[int, dict[str, float]]:
    """``{batch: {model name: median ms}}`` on the first ``batch`` rows of ``x`` (all of
    ``x`` when it has fewer), every model timed on the same inputs."""
    return {b: measure_latency(models, x[: min(b, len(x))], repeats) for b in batches}


__all__ = ["latency_by_batch", "measure_latency", "time_ms"]
