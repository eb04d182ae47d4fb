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
    (``random_start``). Each example keeps its first successful iterate (the start counts),
    else the last iterate; ``restarts`` runs again on the examples not yet fooled, each
    keeping its first success (else its highest-loss end point). With ``target`` labels the loss toward the
    target is minimised (``-CE``, target margin or targeted DLR is maximised). ``early_stop``
    also stops the steps once every example is fooled.
    ``loss``: "ce", "margin"/"cw" (Carlini-Wagner) or "dlr" (2003.01690, Eq. 5).
    """

    #: keep each example's first successful iterate (FGSM, one step, returns its step)
    keep_first = True

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
        if self.restarts == 1:  # nothing to choose between
            return AttackResult(*self.run_once(x, y, target, gen))
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
        """One PGD run on the whole batch: ``(x_adv, success, loss)``.

        Each example keeps its first successful iterate, read off the forward pass that its
        gradient step makes anyway (the best-so-far point that AutoAttack-style robust
        accuracy counts, 2003.01690 Sec. 5); only the examples that no iterate fooled get one
        more forward pass, on the last iterate, which they keep with its loss. So success is
        exact for the returned points and a superset of the last iterate's success, at the
        cost of a bare loop when (nearly) every example is fooled on the way.
        """
        n_cls = classes_of(self, x)
        fn = objective(self.loss, target, n_cls)
        x_adv = random_start(x, self.eps, self.norm, gen) if self.random_start else x.clone()
        first = _First(x)
        track = self.keep_first or self.early_stop
        x_adv = self._iterate(x, x_adv, y, fn, target, first if track else None)
        idx = first.pending()
        if idx.numel():
            t = None if target is None else target[idx]
            with torch.no_grad():
                logits = self.model(x_adv[idx])
            loss = objective(self.loss, t, n_cls)(logits, y[idx])
            first.record(idx, x_adv[idx], loss, self.success_of(logits, y[idx], t))
        return first.x_adv, first.found, first.loss

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
        :mod:`sparta.defenses` call this on their own ``frozen`` block). ``x_adv`` is
        updated in place (no copy per step) and returned."""
        first = _First(x) if self.early_stop else None
        return self._iterate(x, x_adv, y, fn, target, first)

    def _iterate(
        self,
        x: torch.Tensor,
        x_adv: torch.Tensor,
        y: torch.Tensor | None,
        fn: Objective,
        target: torch.Tensor | None,
        first: _First | None,
    ) -> torch.Tensor:
        """The loop of :meth:`ascend`; ``first`` (if given) records each example's first
        successful iterate from the step's own forward pass, and with ``early_stop`` the
        loop ends once every example has one."""
        if self.norm == "linf":  # the ball and the box in one clamp, bounds computed once
            lo, hi = (x - self.eps).clamp_(min=0.0), (x + self.eps).clamp_(max=1.0)
        for _ in range(self.steps if self.eps > 0 else 0):  # nothing to search at eps = 0
            loss, logits, grad = self.gradient(x_adv, y, fn)
            if first is not None:
                new = self.success_of(logits, y, target) & ~first.found
                if bool(new.any()):
                    idx = new.nonzero().squeeze(1)
                    first.record(idx, x_adv[idx], loss[idx], new[idx])
                if self.early_stop:
                    if bool(first.found.all()):
                        break
                    grad.masked_fill_(rows(first.found, grad), 0.0)  # fooled: stay put
            if self.norm == "linf":
                x_adv.add_(grad.sign_(), alpha=self.alpha).clamp_(lo, hi)
            else:
                x_adv = project(
                    x_adv + self.alpha * normalize_step(grad, self.norm), x, self.eps, self.norm
                )
        return x_adv


class _First:
    """Each example's first successful point (``found``), with its loss; the rest are filled
    in by the caller at the end."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x_adv = torch.empty_like(x)
        self.found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        self.loss = torch.zeros(len(x), dtype=x.dtype, device=x.device)

    def pending(self) -> torch.Tensor:
        return (~self.found).nonzero().squeeze(1)

    def record(
        self, idx: torch.Tensor, x_adv: torch.Tensor, loss: torch.Tensor, success: torch.Tensor
    ) -> None:
        self.x_adv[idx] = x_adv
        self.loss[idx] = loss.to(self.loss.dtype)
        self.found[idx] = success


@register_attack("fgsm")
class FGSM(PGD):
    """Fast gradient sign method (Goodfellow et al. 2015, 1412.6572): one step of size
    ``alpha`` (default ``eps``) along the sign (Linf) or normalised (L2) gradient, from ``x``
    or, with ``random_start``, from a uniform point of the ball (Wong et al. 2020)."""

    keep_first = False  # the point after the step, even where the start is misclassified

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
