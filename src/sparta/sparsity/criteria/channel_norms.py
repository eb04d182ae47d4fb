"""Channel criteria: the L1 / L2 norm of each channel's filters (Li et al. 2017, 1608.08710)
and the BatchNorm scale ``|gamma|`` (network slimming, Liu et al. 2017, 1708.06519).

Each scores the channels of :class:`~sparta.sparsity.groups.ChannelGroup` s directly (one
score per channel, summed over the group's producers or BatchNorms); they prune channels only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from sparta.sparsity.criteria import register_channel_criterion


def _norms(model: nn.Module, groups: Sequence[Any], p: int) -> list[torch.Tensor]:
    mods = dict(model.named_modules())
    out = []
    for g in groups:
        s = torch.zeros(g.size)
        for name in g.producers:
            w = mods[name].weight.detach().float().flatten(1)
            s += torch.linalg.vector_norm(w, ord=p, dim=1).cpu()
        out.append(s)
    return out


@register_channel_criterion("l1")
def l1_channels(model: nn.Module, groups: Sequence[Any], data: Any, seed: int = 0) -> list:
    """L1 norm of each channel's producer rows, summed over the group's producers."""
    return _norms(model, groups, 1)


@register_channel_criterion("l2")
def l2_channels(model: nn.Module, groups: Sequence[Any], data: Any, seed: int = 0) -> list:
    """L2 norm of each channel's producer rows, summed over the group's producers."""
    return _norms(model, groups, 2)


@register_channel_criterion("bn-scale", aliases=("bn",))
def bn_scale_channels(model: nn.Module, groups: Sequence[Any], data: Any, seed: int = 0) -> list:
    """``|gamma|`` of each channel summed over the group's BatchNorms (network slimming)."""
    mods = dict(model.named_modules())
    out = []
    for g in groups:
        bns = [mods[n] for n in g.norms if getattr(mods[n], "weight", None) is not None]
        if not bns:
            raise ValueError(
                f"channel score 'bn-scale' needs a BatchNorm with a scale in every group; group "
                f"{g.name} ({g.size} channels) has none; use l1 or l2"
            )
        out.append(sum(m.weight.detach().float().abs().cpu() for m in bns))
    return out
