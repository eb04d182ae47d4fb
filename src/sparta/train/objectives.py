"""Training objectives: what the loop minimises on one batch.

An objective is a callable ``objective(model, x, y) -> (loss, logits)``; the logits are
those of the clean batch (for training accuracy). Later pillars (adversarial training,
TRADES, l1, unlearning) register theirs here by name without touching the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn


class Objective(Protocol):
    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


_OBJECTIVES: dict[str, Callable[..., Objective]] = {}


def register_objective(name: str) -> Callable[[Callable[..., Objective]], Callable[..., Objective]]:
    """Register a factory ``f(**options) -> Objective`` under ``name``."""

    def deco(factory: Callable[..., Objective]) -> Callable[..., Objective]:
        _OBJECTIVES[name] = factory
        return factory

    return deco


def create_objective(name: str, **options: Any) -> Objective:
    """Build the objective registered as ``name``."""
    if name not in _OBJECTIVES:
        raise ValueError(
            f"objective {name!r} is not known; allowed: {', '.join(sorted(_OBJECTIVES))}"
        )
    return _OBJECTIVES[name](**options)


def objective_names() -> list[str]:
    return sorted(_OBJECTIVES)


class CrossEntropy:
    """Standard cross-entropy, with optional label smoothing."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing), logits


@register_objective("standard")
def _standard(label_smoothing: float = 0.0, **_: Any) -> Objective:
    return CrossEntropy(label_smoothing)
