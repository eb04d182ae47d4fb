"""l1-sparse: fine-tune on the retain set with an l1 penalty whose weight decays.

``loss = CE + gamma_e * ||theta||_1`` over all parameters, with ``gamma_e = gamma * (1 -
e / (E - E0))`` in epoch ``e`` of ``E`` (linear decay to zero; 0 in the last ``E0 =
no_l1_epochs``), as in 2304.04934 Sec. 4 ("sparsity-aware unlearning", a linearly
decreasing gamma schedule) and its code (``FT_l1``). Defaults: 10 epochs at lr 0.01;
gamma = 5e-5 (the low end of the paper's search range [5e-5, 1e-4], App. C.2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from sparta.train import Callback, TrainConfig
from sparta.unlearn.methods.base import Plan, register_method
from sparta.unlearn.options import UnlearnOptions
from sparta.unlearn.settings import Setting

if TYPE_CHECKING:
    from sparta.train import Trainer


def l1_weight(gamma: float, epoch: int, epochs: int, no_l1_epochs: int = 0) -> float:
    """The penalty weight in (0-based) ``epoch``: linear decay from ``gamma`` to 0."""
    span = epochs - no_l1_epochs
    if span <= 0:
        return gamma if no_l1_epochs == 0 else 0.0
    return gamma * (1 - epoch / span) if epoch < span else 0.0


class L1Sparse(Callback):
    """Objective ``CE + gamma_e * l1`` and the callback that sets ``gamma_e`` each epoch."""

    name = "l1_sparse"

    def __init__(self, gamma: float, no_l1_epochs: int = 0) -> None:
        self.gamma, self.no_l1_epochs = gamma, no_l1_epochs
        self.current = gamma

    def on_epoch_start(self, trainer: Trainer) -> None:
        self.current = l1_weight(
            self.gamma, trainer.epoch, trainer.config.epochs, self.no_l1_epochs
        )

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        if self.current > 0:
            loss = loss + self.current * sum(p.abs().sum() for p in model.parameters())
        return loss, logits


@register_method("l1-sparse", epochs=10, lr=0.01, summary="FT with a decaying l1 penalty")
def prepare(model: nn.Module, setting: Setting, opts: UnlearnOptions, base: TrainConfig) -> Plan:
    """Fine-tune on the retain set with a linearly decaying l1 penalty."""
    objective = L1Sparse(opts.l1_gamma, opts.no_l1_epochs)
    return Plan(setting.retain, objective=objective, callbacks=[objective])
