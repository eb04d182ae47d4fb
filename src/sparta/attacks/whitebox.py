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
    else its last iterate; ``restarts`` runs again on the examples not yet fooled, each
    keeping its first success (else its highest-loss end point). With ``target`` labels the
    loss toward the target is minimised (``-CE``, target margin or targeted DLR is
    maximised). ``early_stop`` only matters to :meth:`ascend` (the training objectives'
    loop), where it freezes an example at its first successful iterate; the attack always
    does. ``loss``: "ce", "margin"/"cw" (Carlini-Wagner) or "dlr" (2003.01690, Eq. 5).
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
        accuracy counts, 2003.01690 Sec. 5), and is not attacked further: fooled examples
        leave the batch, so later steps cost only what is left. The examples no iterate
        fooled get one more forward pass, on their last iterate, which they keep with its
        loss. Success is exact for the returned points and a superset of the last iterate's.
        """
        n_cls = classes_of(self, x)
        x_adv = random_start(x, self.eps, self.norm, gen) if self.random_start else x.clone()
        if not self.keep_first:
            fn = objective(self.loss, target, n_cls)
            x_adv = self.ascend(x, x_adv, y, fn, target)
            with torch.no_grad():
                logits = self.model(x_adv)
            return x_adv, self.success_of(logits, y, target), fn(logits, y)
        return self._search(x, x_adv, y, target, n_cls)

    def _search(
        self,
        x: torch.Tensor,
        x_adv: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        n_cls: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The steps of :meth:`run_once` on a shrinking working set (``act``: its rows)."""
        out = torch.empty_like(x)
        success = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        out_loss = torch.empty(len(x), dtype=x.dtype, device=x.device)
        act = torch.arange(len(x), device=x.device)
        bounds = self._bounds(x)
        done = torch.zeros_like(success)  # fooled rows still in the working set (frozen)
        fn = objective(self.loss, target, n_cls)
        for _ in range(self.steps if self.eps > 0 else 0):  # nothing to search at eps = 0
            loss, logits, grad = self.gradient(x_adv, y, fn)
            new = self.success_of(logits, y, target) & ~done
            if bool(new.any()):
                idx = act[new]
                out[idx], success[idx], out_loss[idx] = x_adv[new], True, loss[new]
                done |= new
                n_done = int(done.sum())
                if n_done == len(done):
                    return out, success, out_loss
                if 8 * n_done >= len(done):  # drop them once it saves >= 1/8 of a step
                    keep = ~done
                    act, x, x_adv, y, grad = act[keep], x[keep], x_adv[keep], y[keep], grad[keep]
                    bounds = tuple(b[keep] for b in bounds)
                    done = done[keep]
                    if target is not None:
                        target = target[keep]
                        fn = objective(self.loss, target, n_cls)
            x_adv = self._step(x, x_adv, grad, bounds, done if bool(done.any()) else None)
        with torch.no_grad():
            logits = self.model(x_adv)
        last = ~done
        idx = act[last]
        out[idx], out_loss[idx] = x_adv[last], fn(logits, y)[last]
        success[idx] = self.success_of(logits, y, target)[last]
        return out, success, out_loss

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
        bounds = self._bounds(x)
        done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for _ in range(self.steps if self.eps > 0 else 0):  # nothing to search at eps = 0
            _, logits, grad = self.gradient(x_adv, y, fn)
            if self.early_stop:
                done |= self.success_of(logits, y, target)
                if bool(done.all()):
                    break
            x_adv = self._step(x, x_adv, grad, bounds, done if bool(done.any()) else None)
        return x_adv

    def _bounds(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Linf: the ball and the box as one pair of bounds, computed once per run."""
        if self.norm == "linf":
            return (x - self.eps).clamp_(min=0.0), (x + self.eps).clamp_(max=1.0)
        return ()

    def _step(
        self,
        x: torch.Tensor,
        x_adv: torch.Tensor,
        grad: torch.Tensor,
        bounds: tuple[torch.Tensor, ...],
        frozen: torch.Tensor | None,
    ) -> torch.Tensor:
        """One projected step (in place for Linf); rows in ``frozen`` stay where they are."""
        if self.norm == "linf":
            step = grad.sign_()
            if frozen is not None:
                step.masked_fill_(rows(frozen, step), 0.0)  # + 0, then a no-op clamp
            return x_adv.add_(step, alpha=self.alpha).clamp_(*bounds)
        moved = project(x_adv + self.alpha * normalize_step(grad, self.norm), x, self.eps, "l2")
        return moved if frozen is None else torch.where(rows(frozen, moved), x_adv, moved)


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
