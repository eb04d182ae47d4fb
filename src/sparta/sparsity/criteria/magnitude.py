"""Magnitude pruning: keep the weights of largest ``|w|`` (Han et al. 2015, 1506.02626)."""

from __future__ import annotations

import torch
from torch import nn

from sparta.data import ImageDataset
from sparta.sparsity.criteria import register_criterion


@register_criterion("magnitude", needs_data=False)
def magnitude_scores(
    model: nn.Module, params: dict[str, nn.Parameter], data: ImageDataset | None
) -> dict[str, torch.Tensor]:
    """``|w|`` of every parameter."""
    return {n: p.detach().abs() for n, p in params.items()}
