"""The one inner-maximisation loop the training objectives share (PGD-AT, TRADES, Fast-AT).

Adversarial examples for training are crafted with the model in **eval mode** (the
registry's ``frozen``: BatchNorm uses its running statistics, dropout is off, parameters
need no gradient), then the loss is taken in the caller's train mode. Why eval mode:

* the inner maximisation then attacks each example against the network that will be
  deployed, not a batch-coupled one (in train mode BatchNorm normalises with the batch's
  statistics, so one example's perturbation moves the others' outputs);
* the k crafting passes do not push k adversarial batches into BatchNorm's running
  statistics per optimizer step; only the training forward pass updates them, once;
* it is what the TRADES reference code does (``model.eval()`` while crafting) and matches
  how the model is attacked at evaluation (every registry attack freezes it the same way).

Madry et al.'s and Wong et al.'s code craft in train mode; on BatchNorm-free models (lenet5,
lenet300, ...) the two choices are identical.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from sparta.attacks.base import project, random_start
from sparta.attacks.whitebox import PGD
from sparta.checks import check_eps, check_int, check_norm, check_positive
from sparta.models.utils import bare, frozen

__all__ = [
    "LossFn",
    "AdversarialObjective",
    "bare",
    "check_attack_options",
    "perturb",
]  # bare: from sparta.models

LossFn = Callable[[torch.Tensor], torch.Tensor]  # logits -> per-example loss to maximise
STARTS = ("uniform", "normal", "none")


class AdversarialObjective:
    """Base of the training objectives that craft adversarial examples (PGD-AT, Fast-AT,
    TRADES): the threat model, the PGD settings and the generator of the random starts.

    ``robust_logits``: the objective returns the logits of the adversarial batch, so the
    loop logs ``train_robust_acc``. The generator's state travels in checkpoints (the loop
    calls :meth:`state_dict`), so a resumed run crafts the same examples as an uninterrupted
    one.
    """

    robust_logits = True

    def __init__(
        self, eps: float, norm: str, steps: int, alpha: float | None, seed: int = 0
    ) -> None:
        check_attack_options(eps, norm, steps, alpha)
        self.eps, self.norm, self.steps, self.alpha = float(eps), norm, steps, alpha
        self.generator = torch.Generator().manual_seed(seed)

    def perturb(
        self, model: nn.Module, x: torch.Tensor, loss_fn: LossFn, start: str
    ) -> torch.Tensor:
        """:func:`perturb` with this objective's settings on the plain module behind
        ``model`` (one pass through a DDP wrapper is the training forward's alone)."""
        return perturb(
            bare(model),
            x,
            loss_fn,
            self.eps,
            self.norm,
            self.steps,
            self.alpha,
            start=start,
            generator=self.generator,
        )

    def state_dict(self) -> dict[str, Any]:
        """The generator's state (a uint8 tensor)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


def check_attack_options(eps: float, norm: str, steps: int, alpha: float | None) -> None:
    """Raise ValueError naming the first bad option."""
    check_eps(eps)
    check_norm(norm)
    check_int("steps", steps)
    check_positive("alpha", alpha)


def perturb(
    model: nn.Module,
    x: torch.Tensor,
    loss_fn: LossFn,
    eps: float,
    norm: str = "linf",
    steps: int = 10,
    alpha: float | None = None,
    start: str = "uniform",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``steps`` of projected steepest ascent on ``loss_fn(model(x'))`` inside the eps-ball:
    the iterations of the attack library's PGD (:meth:`sparta.attacks.whitebox.PGD.ascend`).

    ``start``: "uniform" (a uniform point of the ball, Madry et al. / Wong et al.),
    "normal" (x + 0.001 N(0, 1), TRADES Alg. 1) or "none". ``alpha`` defaults to
    2.5 eps / steps (Madry et al. 2018), enough to cross the ball from any start point.
    Returns a detached ``x'`` inside the ball and [0, 1]; the model is in eval mode with
    parameter gradients off during the loop, and restored afterwards.
    """
    if start not in STARTS:
        raise ValueError(f"start={start!r} is not allowed; expected one of {', '.join(STARTS)}")
    if eps == 0:
        return x.detach()
    pgd = PGD(model, eps, norm=norm, steps=steps, alpha=alpha, random_start=False)
    generator = generator or torch.Generator().manual_seed(0)
    x = x.detach()
    if start == "uniform":
        x_adv = random_start(x, eps, norm, generator)
    elif start == "normal":
        noise = torch.randn(x.shape, generator=generator, device="cpu").to(x)
        x_adv = project(x + 0.001 * noise, x, eps, norm)
    else:
        x_adv = x.clone()
    with frozen(model):
        x_adv = pgd.ascend(x, x_adv, None, lambda logits, _: loss_fn(logits))
    return x_adv.detach()
