"""Random pruning: i.i.d. uniform scores from a seeded generator (a baseline)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from sparta.data import ImageDataset
from sparta.sparsity.criteria import register_criterion


def random_channels(
    model: nn.Module, groups: Sequence[Any], data: ImageDataset | None, seed: int = 0
) -> list[torch.Tensor]:
    """Uniform [0, 1) per channel, group after group, from ``torch.Generator(seed)``."""
    g = torch.Generator().manual_seed(int(seed))
    return [torch.rand(group.size, generator=g) for group in groups]


@register_criterion("random", needs_data=False, channel=random_channels)
def random_scores(
    model: nn.Module, params: dict[str, nn.Parameter], data: ImageDataset | None, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Uniform [0, 1) scores drawn in parameter order from ``torch.Generator(seed)``."""
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(p.shape, generator=g).to(p.device) for n, p in params.items()}
