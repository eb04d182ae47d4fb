"""FGSM and PGD: (projected) steepest ascent on a loss, Linf or L2, targeted or not."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sparta.attacks._shared import (
    Best,
    Objective,
    check_int,
    check_positive,
    classes_of,
    objective,
    rows,
    until_success,
)
from sparta.attacks.base import (
    Attack,
    AttackResult,
    get_loss,
    normalize_step,
    project,
    random_start,
    register_attack,
)


@register_attack("pgd")
class PGD(Attack):
    """Projected gradient descent (Madry et al. 2018, 1706.06083, Sec. 2 and 5).

    ``x <- Proj_{B(x0, eps) and [0,1]}(x + alpha * s)`` with ``s`` the sign of the gradient
    (Linf) or the gradient over its L2 norm, ``steps`` times, from a uniform point of the ball
    (``random_start``). ``restarts`` runs again on the examples not yet fooled; each keeps its
    first success (else its highest-loss end point). With ``target`` labels the loss toward the
    target is minimised (``-CE``, target margin or targeted DLR is maximised). ``early_stop``
    freezes an example at its first successful iterate; otherwise PGD returns the last iterate.
    ``loss``: "ce", "margin"/"cw" (Carlini-Wagner) or "dlr" (2003.01690, Eq. 5).
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        steps: int = 10,
        alpha: float | None = None,
        random_start: bool = True,
        restarts: int = 1,
        loss: str = "ce",
        early_stop: bool = False,
        **common: Any,
    ) -> None:
        super().__init__(model, eps, **common)
        self.steps = check_int("steps", steps)
        self.restarts = check_int("restarts", restarts)
        get_loss(loss)
        self.loss = loss
        self.random_start = bool(random_start)
        self.early_stop = bool(early_stop)
        # 2.5 * eps / steps: the iterate can travel 2.5 eps in all, enough to reach the
        # boundary from any random start and move along it (the rule of Madry et al.'s
        # `robustness` library; the paper's own MNIST setup, Sec. 5, is eps=0.3, 40 x 0.01).
        alpha = check_positive("alpha", alpha)
        self.alpha = alpha if alpha is not None else 2.5 * self.eps / self.steps

    def perturb(
        self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> AttackResult:
        gen = self.generator()
        best = Best(x)

        def run(idx: torch.Tensor, _: int) -> tuple[torch.Tensor, ...]:
            t = None if target is None else target[idx]
            return self.run_once(x[idx], y[idx], t, gen)

        until_success(best, self.restarts, run)
        return best.result()

    def run_once(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        gen: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One PGD run on the whole batch: ``(x_adv, success, loss)``."""
        fn = objective(self.loss, target, classes_of(self, x))
        x_adv = random_start(x, self.eps, self.norm, gen) if self.random_start else x.clone()
        x_adv = self.ascend(x, x_adv, y, fn, target)
        with torch.no_grad():
            logits = self.model(x_adv)
        return x_adv, self.success_of(logits, y, target), fn(logits, y)

    def ascend(
        self,
        x: torch.Tensor,
        x_adv: torch.Tensor,
        y: torch.Tensor | None,
        fn: Objective,
        target: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The PGD iterations from ``x_adv``: ``steps`` steps of size ``alpha`` along the
        sign (Linf) or normalised (L2) gradient of ``fn(logits, y)`` (per example, summed),
        each projected onto the eps-ball around ``x`` and [0, 1]. With ``early_stop`` an
        example stops at its first successful iterate (``y`` needed). The model must be
        frozen already (``__call__`` does it; the training objectives in
        :mod:`sparta.defenses` call this on their own ``frozen`` block)."""
        done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for _ in range(self.steps if self.eps > 0 else 0):  # nothing to search at eps = 0
            _, logits, grad = self.gradient(x_adv, y, fn)
            step = self.alpha * normalize_step(grad, self.norm)
            if self.early_stop:
                done |= self.success_of(logits, y, target)
                if bool(done.all()):
                    break
                step = step.masked_fill(rows(done, step), 0.0)
            x_adv = project(x_adv + step, x, self.eps, self.norm)
        return x_adv


@register_attack("fgsm")
class FGSM(PGD):
    """Fast gradient sign method (Goodfellow et al. 2015, 1412.6572): one step of size
    ``alpha`` (default ``eps``) along the sign (Linf) or normalised (L2) gradient, from ``x``
    or, with ``random_start``, from a uniform point of the ball (Wong et al. 2020)."""

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        alpha: float | None = None,
        random_start: bool = False,
        loss: str = "ce",
        norm: str = "linf",
        seed: int = 0,
        num_classes: int | None = None,
    ) -> None:
        # explicit options (no **common): FGSM takes none of PGD's others (steps, restarts)
        common = {"norm": norm, "seed": seed, "num_classes": num_classes}
        super().__init__(
            model, eps, steps=1, alpha=alpha, random_start=random_start, loss=loss, **common
        )
        if alpha is None:
            self.alpha = self.eps
