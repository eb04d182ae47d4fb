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

from sparta.data import ImageDataset, as_dataset
from sparta.registry import Registry, canonical

Criterion = Callable[..., dict[str, torch.Tensor]]
#: ``fn(model, groups, data, seed) -> [scores of group.size]`` scores whole channels
ChannelCriterion = Callable[..., list[torch.Tensor]]


@dataclass(frozen=True)
class CriterionEntry:
    """One registered criterion; ``rounds > 1`` marks an iterative one (see ``prune``).

    ``fn`` scores weights (None for a criterion of channels only); ``channel`` (optional)
    scores whole channels directly, otherwise channel pruning sums ``fn``'s scores per channel.
    """

    name: str
    fn: Criterion | None
    needs_data: bool
    rounds: int = 1
    channel: ChannelCriterion | None = None


#: every pruning criterion by name; ``meta``: ``entry`` (the :class:`CriterionEntry`),
#: ``structure`` (``"any"``, or ``"channel"`` for criteria that only score channels)
CRITERIA: Registry[Callable[..., Any]] = Registry(
    "criteria", populate="sparta.sparsity.criteria", label="pruning method"
)


def register_criterion(
    name: str,
    needs_data: bool,
    rounds: int = 1,
    channel: ChannelCriterion | None = None,
    aliases: tuple[str, ...] = (),
) -> Callable[[Criterion], Criterion]:
    """Decorator registering ``fn(model, params, data, **opts)`` under ``name``.

    ``rounds > 1`` makes :func:`sparta.sparsity.pruning.prune` score and prune iteratively
    with that many rounds by default, passing the current masks as ``masks=``. ``channel``
    (optional) scores channels directly when the criterion prunes channels.
    """

    def decorate(fn: Criterion) -> Criterion:
        entry = CriterionEntry(canonical(name), fn, needs_data, rounds, channel)
        CRITERIA.add(name, fn, aliases=aliases, entry=entry, structure="any")
        return fn

    return decorate


def register_channel_criterion(
    name: str, needs_data: bool = False, aliases: tuple[str, ...] = ()
) -> Callable[[ChannelCriterion], ChannelCriterion]:
    """Decorator registering ``fn(model, groups, data, seed) -> [per-channel scores]`` as a
    criterion that only prunes channels (``structure="channel"``)."""

    def decorate(fn: ChannelCriterion) -> ChannelCriterion:
        entry = CriterionEntry(canonical(name), None, needs_data, 1, fn)
        CRITERIA.add(name, fn, aliases=aliases, entry=entry, structure="channel")
        return fn

    return decorate


def criterion_names(structure: str = "weight") -> list[str]:
    """Names of the criteria that score weights (``structure="channel"``: every criterion
    that can prune channels, i.e. all of them), sorted."""
    if structure == "channel":
        return CRITERIA.names()
    return CRITERIA.names(structure="any")


def criterion(name: str) -> CriterionEntry:
    """The entry of ``name``; an unknown name is a ValueError listing the known ones."""
    return CRITERIA.get(name).meta["entry"]


def score(
    name: str,
    model: nn.Module,
    params: Mapping[str, nn.Parameter],
    data: ImageDataset | None = None,
    **opts: Any,
) -> dict[str, torch.Tensor]:
    """Scores of ``params`` by criterion ``name`` (same shapes; higher = keep)."""
    entry = criterion(name)
    if entry.fn is None:
        raise ValueError(
            f"pruning method {name!r} scores whole channels only; use it with structure "
            f"'channel' or choose one of {', '.join(criterion_names())}"
        )
    if entry.needs_data and data is None:
        raise ValueError(f"pruning method {name!r} needs data (pass a dataset)")
    scores = entry.fn(model, dict(params), None if data is None else as_dataset(data), **opts)
    for n, p in params.items():
        if n not in scores or tuple(scores[n].shape) != tuple(p.shape):
            raise ValueError(f"criterion {name!r} returned no score of shape {tuple(p.shape)}")
    return {n: scores[n].detach() for n in params}


# register the built-in criteria
from sparta.sparsity.criteria import (  # noqa: E402, F401
    channel_norms,
    grasp,
    magnitude,
    random,
    snip,
    synflow,
    taylor,
)

__all__ = [
    "CRITERIA",
    "CriterionEntry",
    "criterion",
    "criterion_names",
    "register_channel_criterion",
    "register_criterion",
    "score",
]
