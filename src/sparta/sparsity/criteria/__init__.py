"""Pruning criteria: a name registry of score functions (higher score = keep).

A criterion is ``fn(model, params, data, **opts) -> {name: score}`` where ``params`` maps
parameter names to the parameters to score and every score has its parameter's shape.
Criteria leave the model as they found it: train/eval mode, ``requires_grad`` flags,
weights, buffers and ``.grad`` fields. Register one with :func:`register_criterion`:

>>> @register_criterion("my-score", needs_data=False)
... def my_score(model, params, data, **opts):
...     return {n: p.detach().abs() for n, p in params.items()}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sparta.data import ImageDataset

Criterion = Callable[..., dict[str, torch.Tensor]]


@dataclass(frozen=True)
class CriterionEntry:
    """One registered criterion; ``rounds > 1`` marks an iterative one (see ``prune``)."""

    name: str
    fn: Criterion
    needs_data: bool
    rounds: int = 1


_CRITERIA: dict[str, CriterionEntry] = {}


def register_criterion(
    name: str, needs_data: bool, rounds: int = 1
) -> Callable[[Criterion], Criterion]:
    """Decorator registering ``fn(model, params, data, **opts)`` under ``name``.

    ``rounds > 1`` makes :func:`sparta.sparsity.pruning.prune` score and prune iteratively
    with that many rounds by default, passing the current masks as ``masks=``.
    """

    def decorate(fn: Criterion) -> Criterion:
        if name in _CRITERIA:
            raise ValueError(f"criterion {name!r} is already registered")
        _CRITERIA[name] = CriterionEntry(name, fn, needs_data, rounds)
        return fn

    return decorate


def criterion_names() -> list[str]:
    """Names of the registered criteria, sorted."""
    return sorted(_CRITERIA)


def criterion(name: str) -> CriterionEntry:
    """The entry of ``name``; an unknown name is a ValueError listing the known ones."""
    if name not in _CRITERIA:
        raise ValueError(
            f"pruning method {name!r} is not known; allowed: {', '.join(criterion_names())}"
        )
    return _CRITERIA[name]


def score(
    name: str,
    model: nn.Module,
    params: Mapping[str, nn.Parameter],
    data: ImageDataset | None = None,
    **opts: Any,
) -> dict[str, torch.Tensor]:
    """Scores of ``params`` by criterion ``name`` (same shapes; higher = keep)."""
    entry = criterion(name)
    if entry.needs_data and data is None:
        raise ValueError(f"pruning method {name!r} needs data (pass a dataset)")
    scores = entry.fn(model, dict(params), data, **opts)
    for n, p in params.items():
        if n not in scores or tuple(scores[n].shape) != tuple(p.shape):
            raise ValueError(f"criterion {name!r} returned no score of shape {tuple(p.shape)}")
    return {n: scores[n].detach() for n in params}


# register the built-in criteria
from sparta.sparsity.criteria import (  # noqa: E402, F401
    grasp,
    magnitude,
    random,
    snip,
    synflow,
    taylor,
)

__all__ = ["CriterionEntry", "criterion", "criterion_names", "register_criterion", "score"]
