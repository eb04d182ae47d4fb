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

from sparta.registry import Registry


class Objective(Protocol):
    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


#: every objective factory by name; ``meta['adversarial']``: a ``sparta train --adv`` choice.
#: The pillars register theirs (defenses: pgd-at, trades, fast, wot; certify: ibp, gaussian),
#: so filling the registry imports them (lazily, by module name).
OBJECTIVES: Registry[Callable[..., Objective]] = Registry(
    "objectives",
    populate=("sparta.train.objectives", "sparta.defenses", "sparta.certify"),
    label="objective",
)


def register_objective(
    name: str, aliases: tuple[str, ...] = (), adversarial: bool = False, **meta: Any
) -> Callable[[Callable[..., Objective]], Callable[..., Objective]]:
    """Register a factory ``f(**options) -> Objective`` under ``name`` (and ``aliases``);
    ``adversarial=True`` makes it a choice of ``sparta train --adv``."""
    return OBJECTIVES.register(name, aliases=aliases, adversarial=adversarial, **meta)


def create_objective(name: str, **options: Any) -> Objective:
    """Build the objective registered as ``name`` (or an alias)."""
    return OBJECTIVES[name](**options)


def objective_names(adversarial: bool | None = None) -> list[str]:
    """Registered objective names, sorted (optionally only the adversarial ones)."""
    return OBJECTIVES.names(**({} if adversarial is None else {"adversarial": adversarial}))


class CrossEntropy:
    """Standard cross-entropy, with optional label smoothing."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing), logits


@register_objective("standard", summary="cross-entropy, optionally label-smoothed")
def _standard(label_smoothing: float = 0.0, **_: Any) -> Objective:
    return CrossEntropy(label_smoothing)
