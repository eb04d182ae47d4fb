"""TRADES (Zhang et al. 2019, arXiv 1901.08573, Sec. 4, Alg. 1).

loss = CE(f(x), y) + beta * KL(f(x) || f(x')), x' = argmax_{||x' - x|| <= eps} KL(f(x) || f(x'))

The KL term follows the authors' reference code, ``KLDivLoss(log_softmax(f(x')),
softmax(f(x)))`` summed over classes and averaged over the batch, i.e. KL(p_clean || p_adv);
gradients flow through both the clean and the adversarial outputs. x' starts at
x + 0.001 N(0, 1) (Alg. 1, line 4) and takes ``steps`` sign-gradient ascent steps on the KL
with the clean distribution held fixed. The training pass is one forward over [x; x'] (one
pass through a DDP wrapper; BatchNorm then normalises the joint batch, where the reference
code makes two passes; the same on BatchNorm-free models). beta = 6 is the paper's
CIFAR-10 / MNIST choice (Sec. 5, 1/lambda = 6).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sparta.defenses.craft import AdversarialObjective
from sparta.models.utils import bare, eval_mode
from sparta.train.objectives import Objective, register_objective


def kl_per_example(clean_logits: torch.Tensor, adv_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(clean) || softmax(adv)) per example (sum over classes)."""
    p_log = F.log_softmax(clean_logits, dim=1)
    q_log = F.log_softmax(adv_logits, dim=1)
    return (p_log.exp() * (p_log - q_log)).sum(1)


class TRADES(AdversarialObjective):
    """Objective: ``CE(f(x), y) + beta * KL(f(x) || f(x'))``; returns the clean logits."""

    def __init__(
        self,
        eps: float = 0.1,
        norm: str = "linf",
        steps: int = 10,
        alpha: float | None = None,
        beta: float = 6.0,
        seed: int = 0,
        **_: Any,
    ) -> None:
        super().__init__(eps, norm, steps, alpha, seed)
        if not beta >= 0:
            raise ValueError(f"beta={beta!r} is not allowed; expected a number >= 0")
        self.beta = float(beta)
        # the paper's step sizes are ~ eps / 4 (CIFAR: 0.007 for eps 0.031)
        self.alpha = alpha if alpha is not None else self.eps / 4

    robust_logits = False  # the clean logits: the loop's train_acc is the clean accuracy

    def craft(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        net = bare(model)
        with torch.no_grad(), eval_mode(net):
            clean = net(x).detach()
        return self.perturb(net, x, lambda logits: kl_per_example(clean, logits), start="normal")

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x_adv = self.craft(model, x)
        logits = model(torch.cat([x, x_adv]))
        clean, adv = logits[: len(x)], logits[len(x) :]
        loss = F.cross_entropy(clean, y) + self.beta * kl_per_example(clean, adv).mean()
        return loss, clean


@register_objective(
    "trades",
    adversarial=True,
    summary="TRADES (Zhang et al. 2019): clean cross-entropy + beta * KL to adversarial",
)
def _trades(**options: Any) -> Objective:
    return TRADES(**options)
