"""Auto-PGD (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble
of diverse parameter-free attacks", 2003.01690): APGD-CE and APGD-T (targeted DLR loss).

PGD with momentum whose step size starts at 2 eps and is halved at checkpoints when progress
stalls, restarting from the best point found (Sec. 3, Algorithm 1).
"""

from __future__ import annotations

import math
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
    top_targets,
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


def checkpoints(n_iter: int) -> list[int]:
    """The checkpoints ``W = {w_0, ..., w_n}`` of Sec. 3.2: ``w_j = ceil(p_j * n_iter)`` with
    ``p_0 = 0``, ``p_1 = 0.22``, ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)`` (p_j <= 1).

    For ``n_iter = 100``: ``[0, 22, 41, 57, 70, 80, 87, 93, 99]``.
    """
    p = [0.0, 0.22]
    while True:
        # rounded so that float noise (0.22 * 100 = 22.000000000000004) cannot move a ceil
        nxt = round(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06), 10)
        if nxt > 1.0:
            break
        p.append(nxt)
    return sorted({math.ceil(round(q * n_iter, 6)) for q in p})


def should_halve(
    history: torch.Tensor,
    last_mark: int,
    mark: int,
    rho: float,
    reduced: torch.Tensor,
    f_max: torch.Tensor,
    f_max_at_last: torch.Tensor,
) -> torch.Tensor:
    """Per example, whether to halve the step size at checkpoint ``w_j = mark`` (Sec. 3.2).

    ``history[k]`` is ``f(x^(k))``. Condition 1: fewer than ``rho * (w_j - w_{j-1})`` of the
    steps since ``w_{j-1}`` increased ``f``; condition 2: the step size was not halved at
    ``w_{j-1}`` (``~reduced``) and the best loss did not improve since then.
    """
    steps_up = (history[last_mark + 1 : mark + 1] > history[last_mark:mark]).sum(0)
    cond1 = steps_up < rho * (mark - last_mark)
    cond2 = ~reduced & (f_max <= f_max_at_last)
    return cond1 | cond2


@register_attack("apgd-ce")
class APGD(Attack):
    """APGD (2003.01690, Algorithm 1) on the cross-entropy (``loss="ce"``, APGD-CE) or the
    DLR loss (``loss="dlr"``), Linf or L2. ``steps`` iterations from a uniform random start,
    momentum ``momentum`` (0.75), step size ``2 eps`` halved at the checkpoints when the
    share of improving steps since the last one is below ``rho`` (0.75) or neither the step
    size nor the best loss changed; each halving restarts from the best point. ``restarts``
    runs again on the examples not yet fooled. Per example it keeps the highest-loss
    successful iterate (else the highest-loss one). With ``target`` labels it maximises the
    loss toward the target and success means predicting the target.
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        steps: int = 100,
        restarts: int = 1,
        loss: str = "ce",
        rho: float = 0.75,
        momentum: float = 0.75,
        **common: Any,
    ) -> None:
        super().__init__(model, eps, **common)
        self.steps = check_int("steps", steps)
        self.restarts = check_int("restarts", restarts)
        get_loss(loss)
        self.loss = loss
        self.rho = check_positive("rho", rho, allow_none=False)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum={momentum!r} is not allowed; expected a number in [0, 1]")
        self.momentum = float(momentum)

    def loss_targets(
        self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> torch.Tensor | None:
        """``(N, k)`` classes whose targeted loss is maximised in turn; None: untargeted."""
        return None if target is None else target[:, None]

    def perturb(
        self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> AttackResult:
        n_cls = classes_of(self, x)
        targets = self.loss_targets(x, y, target)
        per_run = 1 if targets is None else targets.shape[1]
        gen = self.generator()
        best = Best(x)

        def run(idx: torch.Tensor, r: int) -> tuple[torch.Tensor, ...]:
            t = None if targets is None else targets[idx, r // self.restarts]
            fn = objective(self.loss, t, n_cls)
            return self.run_once(x[idx], y[idx], fn, None if target is None else target[idx], gen)

        until_success(best, per_run * self.restarts, run)
        return best.result()

    def run_once(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        fn: Objective,
        target: torch.Tensor | None,
        gen: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Algorithm 1 on a batch, maximising ``fn(logits, y)``: ``(x_adv, success, loss)``."""
        eps, norm = self.eps, self.norm
        marks = checkpoints(self.steps)
        best = Best(x)
        x_cur = random_start(x, eps, norm, gen)
        loss, logits, grad = self.gradient(x_cur, y, fn)
        best.update(None, x_cur, self.success_of(logits, y, target), loss)
        f_max, x_max, g_max = loss.clone(), x_cur.clone(), grad.clone()
        history = loss.new_empty(self.steps + 1, len(x))  # f(x^(k)), k = 0..steps
        history[0] = loss
        shape = (len(x),) + (1,) * (x.ndim - 1)
        eta = torch.full(shape, 2.0 * eps, dtype=x.dtype, device=x.device)  # eta^(0) = 2 eps
        reduced = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        f_at_mark, last_mark = f_max.clone(), 0
        x_prev, a = x_cur, self.momentum
        for k in range(self.steps if eps > 0 else 0):  # nothing to search at eps = 0
            z = project(x_cur + eta * normalize_step(grad, norm), x, eps, norm)
            if k > 0:  # momentum step (Alg. 1; the first step, k = 0, has none)
                z = project(x_cur + a * (z - x_cur) + (1 - a) * (x_cur - x_prev), x, eps, norm)
            x_prev, x_cur = x_cur, z
            loss, logits, grad = self.gradient(x_cur, y, fn)
            history[k + 1] = loss
            best.update(None, x_cur, self.success_of(logits, y, target), loss)
            up = loss > f_max
            f_max = torch.where(up, loss, f_max)
            x_max = torch.where(rows(up, x), x_cur, x_max)
            g_max = torch.where(rows(up, x), grad, g_max)
            if k + 1 in marks:
                w = k + 1
                halve = should_halve(history, last_mark, w, self.rho, reduced, f_max, f_at_mark)
                eta = torch.where(rows(halve, x), eta / 2, eta)
                # ... and continue from the best point (Alg. 1)
                x_cur = torch.where(rows(halve, x), x_max, x_cur)
                grad = torch.where(rows(halve, x), g_max, grad)
                history[w] = torch.where(halve, f_max, history[w])
                reduced, f_at_mark, last_mark = halve, f_max.clone(), w
            if bool(best.success.all()):
                break
        return best.x_adv, best.success, best.loss


@register_attack("apgd-t")
class APGDT(APGD):
    """APGD-T (2003.01690, Sec. 4): APGD on the targeted DLR loss (Eq. 6), run in turn with
    each of the ``n_target_classes`` (9) highest-scoring non-true classes as the target, only
    on the examples not yet misclassified. With explicit ``target`` labels it attacks those
    (success = predicting the target). Needs at least 4 classes."""

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        steps: int = 100,
        restarts: int = 1,
        n_target_classes: int = 9,
        rho: float = 0.75,
        momentum: float = 0.75,
        norm: str = "linf",
        seed: int = 0,
        num_classes: int | None = None,
    ) -> None:
        # explicit options (no **common): the loss is fixed to the targeted DLR
        common = {"norm": norm, "seed": seed, "num_classes": num_classes}
        super().__init__(model, eps, steps, restarts, "dlr", rho, momentum, **common)
        self.n_target_classes = check_int("n_target_classes", n_target_classes)

    def loss_targets(
        self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> torch.Tensor:
        if target is not None:
            return target[:, None]
        with torch.no_grad():
            logits = self.model(x)
        return top_targets(logits, y, self.n_target_classes)
