"""GA: gradient ascent on the forget set (minimise the negative cross-entropy).

Defaults: 5 epochs at lr 1e-4 (2304.04934's code, Unlearn-Sparse README "GA" command).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sparta.train import TrainConfig
from sparta.unlearn.methods.base import Plan, register_method
from sparta.unlearn.options import UnlearnOptions
from sparta.unlearn.settings import Setting


class NegativeCrossEntropy:
    """Objective ``-CE(model(x), y)``: descending it ascends the forget loss."""

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        return -F.cross_entropy(logits, y), logits


@register_method("ga", epochs=5, lr=1e-4, summary="gradient ascent on the forget set")
def prepare(model: nn.Module, setting: Setting, opts: UnlearnOptions, base: TrainConfig) -> Plan:
    """Gradient ascent on the forget set."""
    return Plan(setting.forget, objective=NegativeCrossEntropy())
