"""PGD adversarial training (Madry et al. 2018, arXiv 1706.06083, Sec. 3 and 5).

min_theta E[ max_{||delta|| <= eps} CE(f_theta(x + delta), y) ]: the inner maximum is
approximated by PGD with a uniform random start, the outer one by SGD on the loss at the
PGD point only (no clean term).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sparta.attacks.base import ce_loss
from sparta.defenses.craft import AdversarialObjective
from sparta.train.objectives import Objective, register_objective


class PGDAdversarialTraining(AdversarialObjective):
    """Objective: cross-entropy at PGD examples crafted against the current weights.

    Returns ``(loss, logits)`` where the logits are those of the adversarial batch
    (``robust_logits``), so the loop logs ``train_robust_acc``, the robust training accuracy
    (as Madry et al. and Rice et al. log it; the clean training accuracy would cost an extra
    forward pass per step). The generator of the random starts travels in checkpoints
    (:meth:`state_dict`), so a resumed run crafts the same examples.
    """

    def __init__(
        self,
        eps: float = 0.1,
        norm: str = "linf",
        steps: int = 10,
        alpha: float | None = None,
        seed: int = 0,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(eps, norm, steps, alpha, seed)
        self.label_smoothing = label_smoothing

    def craft(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """PGD examples on the cross-entropy from a uniform random start."""
        return self.perturb(model, x, lambda logits: ce_loss(logits, y), start="uniform")

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(self.craft(model, x, y))
        return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing), logits


@register_objective(
    "pgd-at",
    aliases=("pgd",),
    adversarial=True,
    summary="PGD adversarial training (Madry et al. 2018): cross-entropy on PGD examples",
)
def _pgd_at(**options: Any) -> Objective:
    return PGDAdversarialTraining(**options)
