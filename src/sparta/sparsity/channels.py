"""Channel (filter) sparsity: score the channels of each dependency group, pick the ones to
remove, and lay the masks out so that the masked model equals the compact one.

``sparsity`` is the fraction of **channels** removed. For a removed channel ``c`` of a group
the masks zero: each producer's output row ``c`` and its bias entry, each BatchNorm's weight
and bias entry (so the channel's activation is exactly 0 after the BN / ReLU), and each
consumer's input columns for ``c``. :func:`sparta.sparsity.export.compact` then removes the
channel physically with identical outputs.

Scores (higher = keep) come from the criteria registry (:mod:`sparta.sparsity.criteria`):
``l1`` / ``l2``: the L1 / L2 norm of each producer's row, summed over the group's producers
(Li et al. 2017); ``bn-scale`` (alias ``bn``): ``|gamma|`` summed over the group's BatchNorms
(network slimming, Liu et al. 2017; an error for a group without BN); ``random``: uniform
from ``seed``; any other criterion (magnitude, snip, taylor, ...) scores the producers'
weights, summed per channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from sparta.sparsity.allocation import check_distribution
from sparta.sparsity.export import kept_channels
from sparta.sparsity.groups import ChannelGroup, channel_groups
from sparta.sparsity.masks import attach
from sparta.sparsity.topk import check_sparsity, n_keep

SCOPES = ("global", "uniform")  # channel distributions; "layer" is an alias of "uniform"


def channel_scores(
    model: nn.Module,
    groups: Sequence[ChannelGroup],
    method: str = "l1",
    data: Any = None,
    seed: int = 0,
    **criterion_options: Any,
) -> list[torch.Tensor]:
    """One score per channel for each group (a float tensor of ``group.size``).

    ``method`` is any criterion of :mod:`sparta.sparsity.criteria`: its channel scorer when
    it has one (l1, l2, bn-scale, random), else its weight scores summed per channel.
    """
    from sparta.sparsity.criteria import criterion, score

    entry = criterion(method)
    if entry.channel is not None:
        return entry.channel(model, groups, data, seed)
    mods = dict(model.named_modules())
    params = {f"{n}.weight": mods[n].weight for g in groups for n in g.producers}
    scores = score(method, model, params, data, **criterion_options)
    return [
        sum(scores[f"{n}.weight"].detach().float().flatten(1).sum(1).cpu() for n in g.producers)
        for g in groups
    ]


def select_channels(
    scores: Sequence[torch.Tensor], sparsity: float, scope: str = "uniform"
) -> list[torch.Tensor]:
    """Boolean keep-vectors, one per group, removing ``sparsity`` of the channels.

    ``scope`` is the distribution: ``uniform`` (alias ``layer``): each group keeps
    ``round(size * (1 - sparsity))`` of its own channels. ``global``: scores are divided by
    their group's mean (over its finite scores), and the lowest ``round(total * sparsity)``
    channels over all groups go. Either way a group keeps at least one channel (its best),
    which can lower the global count slightly. A channel scored ``-inf`` (already removed)
    goes first.
    """
    check_sparsity(sparsity)
    if str(scope).strip().lower() == "erk":
        raise ValueError(
            "distribution 'erk' is not defined for channel sparsity (it allocates weights, "
            "not channels); use 'uniform' (the same fraction in every group) or 'global'"
        )
    scope = check_distribution(scope, SCOPES)
    keeps = []
    if scope == "uniform":
        for s in scores:
            k = max(1, n_keep(s.numel(), 1.0 - sparsity))
            keep = torch.zeros(s.numel(), dtype=torch.bool)
            keep[_order(s)[-k:]] = True
            keeps.append(keep)
        return keeps
    total = sum(s.numel() for s in scores)
    n_remove = total - n_keep(total, 1.0 - sparsity)
    candidates: list[torch.Tensor] = []
    owners: list[torch.Tensor] = []
    for i, s in enumerate(scores):
        keep = torch.zeros(s.numel(), dtype=torch.bool)
        order = _order(s)
        keep[order[-1]] = True  # the best channel of every group stays
        keeps.append(keep)
        finite = s.double()[torch.isfinite(s.double())]
        mean = float(finite.mean()) if finite.numel() else 1.0
        norm = s.double() / max(mean, 1e-12)
        rest = order[:-1]
        candidates.append(norm[rest])
        owners.append(torch.stack([torch.full_like(rest, i), rest], 1))
    if candidates:
        cand = torch.cat(candidates)
        who = torch.cat(owners)
        chosen = torch.argsort(cand, stable=True)[: min(n_remove, cand.numel())]
        removed = torch.zeros(cand.numel(), dtype=torch.bool)
        removed[chosen] = True
        for (gi, c), r in zip(who.tolist(), removed.tolist(), strict=True):
            if not r:
                keeps[gi][c] = True
    return keeps


def _order(s: torch.Tensor) -> torch.Tensor:
    """Channel indices from lowest to highest score (ties: lower index first)."""
    return torch.argsort(s.double(), stable=True)


def masks_for(
    model: nn.Module, groups: Sequence[ChannelGroup], keeps: Sequence[torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The parameter masks that remove the channels where ``keeps[i]`` is False in group i:
    producer rows and bias, BatchNorm weight and bias, consumer input columns. Float
    ``keeps`` give float masks (products of the keeps, differentiable in them)."""
    mods = dict(model.named_modules())
    masks: dict[str, torch.Tensor] = {}

    def restrict(name: str, param: torch.Tensor | None, keep: torch.Tensor, dim: int) -> None:
        if param is None:
            return
        shape = [1] * param.dim()
        shape[dim] = -1
        factor = keep.to(param.device).view(shape)
        m = masks.get(name)
        if m is None:
            m = torch.ones(param.shape, dtype=keep.dtype, device=param.device)
        # float keeps (BiP's straight-through scores) multiply, differentiably
        masks[name] = m * factor if keep.is_floating_point() else m & factor

    for g, keep in zip(groups, keeps, strict=True):
        if keep.numel() != g.size:
            raise ValueError(f"keep vector of {keep.numel()} for group {g.name} of {g.size}")
        for n in g.producers:
            mod = mods[n]
            restrict(f"{n}.weight", mod.weight, keep, 0)
            restrict(f"{n}.bias", mod.bias, keep, 0)
        for n in g.norms:
            mod = mods[n]
            restrict(f"{n}.weight", getattr(mod, "weight", None), keep, 0)
            restrict(f"{n}.bias", getattr(mod, "bias", None), keep, 0)
        for c in g.consumers:
            restrict(
                f"{c.module}.weight", mods[c.module].weight, keep.repeat_interleave(c.inner), 1
            )
    return masks


def channel_masks(
    model: nn.Module,
    sparsity: float,
    method: str = "l1",
    scope: str = "uniform",
    data: Any = None,
    *,
    input_shape: Sequence[int] | None = None,
    seed: int = 0,
    **criterion_options: Any,
) -> dict[str, torch.Tensor]:
    """Parameter name -> bool mask removing ``sparsity`` of the channels of every prunable
    group of ``model`` (see the module docstring for ``method`` and :func:`select_channels`
    for ``scope``, the distribution). Channels the model's masks already remove score
    ``-inf``, so they stay removed. ``input_shape`` defaults to the model's sparta spec.
    Attach the result with :func:`sparta.sparsity.masks.attach` (or use
    :func:`prune_channels`)."""
    check_sparsity(sparsity)
    groups = channel_groups(model, input_shape)
    if not groups:
        raise ValueError(f"{type(model).__name__} has no prunable channel group")
    scores = channel_scores(model, groups, method, data, seed=seed, **criterion_options)
    scores = [
        s.float().masked_fill(~alive, -float("inf"))
        for s, alive in zip(scores, kept_channels(model, groups), strict=True)
    ]
    keeps = select_channels(scores, sparsity, scope)
    return masks_for(model, groups, keeps)


def prune_channels(
    model: nn.Module,
    sparsity: float,
    method: str = "l1",
    scope: str = "uniform",
    data: Any = None,
    **options: Any,
) -> dict[str, torch.Tensor]:
    """:func:`channel_masks`, attached to ``model`` (pruned entries zeroed); returns them."""
    masks = channel_masks(model, sparsity, method, scope, data, **options)
    attach(model, masks)
    return masks
