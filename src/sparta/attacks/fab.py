"""FAB-T (Croce & Hein 2020, "Minimally distorted adversarial examples with a fast adaptive
boundary attack", 1907.02044), targeted version as in AutoAttack (2003.01690, Sec. 4).

Each step linearises the decision boundary between the true class and the target class,
projects both the iterate and the original point onto that hyperplane intersected with the box
[0, 1], and moves to a convex combination of the two projections (extrapolated by ``eta``);
once the iterate is adversarial it steps back toward the original point (``beta``), so the
adversarial examples found shrink toward the closest one. Success is reported at ``eps``: the
final point (projected onto the eps-ball) must be misclassified.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sparta.attacks._shared import (
    Best,
    check_int,
    check_positive,
    dist,
    rows,
    top_targets,
    until_success,
)
from sparta.attacks.base import Attack, AttackResult, margin_loss, project, register_attack


def boundary_projection(
    p: torch.Tensor, w: torch.Tensor, c: torch.Tensor, norm: str
) -> torch.Tensor:
    """Smallest ``d`` (Linf or L2) with ``w . (p + d) + c = 0`` and ``p + d`` in [0, 1].

    ``p``, ``w``: ``(N, D)``; ``c``: ``(N,)``. Where the box keeps the hyperplane out of reach,
    ``d`` is the box point that gets closest to it (every coordinate moved to its bound).

    With ``r = w . p + c`` and ``s = -sign(r)``, the optimum moves coordinate ``i`` by
    ``s sign(w_i) min(lam k_i, room_i)`` (``room_i`` the distance to the bound it moves
    toward; ``k_i = 1`` for Linf, ``|w_i|`` for L2 by the KKT conditions), and
    ``g(lam) = sum_i |w_i| min(lam k_i, room_i)`` is piecewise linear and non-decreasing in
    ``lam`` with breakpoints ``room_i / k_i``: sort them, evaluate ``g`` at every breakpoint
    with cumulative sums, and solve the one linear piece that reaches ``|r|`` (1907.02044,
    Sec. 3, as a sort instead of a bisection; batched over examples).
    """
    work = torch.float64
    p64, w64, c64 = p.to(work), w.to(work), c.to(work)
    r = (w64 * p64).sum(1) + c64
    direction = -torch.sign(r)[:, None] * torch.sign(w64)  # each coordinate's way to go
    room = torch.where(direction > 0, 1.0 - p64, p64).clamp_min(0.0)
    aw = w64.abs()
    k = torch.ones_like(aw) if norm == "linf" else aw
    slope = aw * k  # d g / d lam while coordinate i is free
    live = slope > 0
    bp = torch.where(live, room / torch.where(live, k, 1.0), 0.0)
    bp, order = bp.sort(dim=1)
    slope_s = slope.gather(1, order)
    sat = (slope_s * bp).cumsum(1)  # sum over saturated coordinates of |w_i| room_i
    free_before = slope_s.sum(1, keepdim=True) - slope_s.cumsum(1)
    g_at = sat + bp * free_before  # g at each sorted breakpoint
    need = r.abs()
    m = (g_at < need[:, None]).sum(1)  # breakpoints passed before g reaches |r|
    zero = torch.zeros(len(p), 1, dtype=work, device=p.device)
    sat_m = torch.cat([zero, sat], 1).gather(1, m[:, None]).squeeze(1)
    slope_m = (slope_s.sum(1, keepdim=True) - torch.cat([zero, slope_s.cumsum(1)], 1)).gather(
        1, m[:, None]
    )
    lam = (need - sat_m) / slope_m.squeeze(1).clamp_min(1e-30)
    lam = torch.where(m >= p.shape[1], torch.full_like(lam, float("inf")), lam.clamp_min(0.0))
    d = direction * torch.minimum(lam[:, None] * k, room)
    return d.nan_to_num(0.0).to(p.dtype)


@register_attack("fab-t")
class FABT(Attack):
    """Targeted FAB (1907.02044, Sec. 3; AutoAttack's FAB-T): for each of the
    ``n_target_classes`` highest-scoring non-true classes (or the given ``target``), ``steps``
    iterations of the boundary projection step on ``f_t - f_y``, with extrapolation
    ``alpha_max`` (0.1), overshoot ``eta`` (1.05) and backward step ``beta`` (0.9);
    ``restarts`` > 1 starts later runs at random points of radius ``min(best, eps) / 2``.
    Keeps the smallest adversarial perturbation found, and stops a run once every example has
    one inside the eps-ball; success only if the final point (projected onto the ball) fools.
    ``loss`` in the result is the (target) margin at ``x_adv``: positive means fooled.
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        steps: int = 100,
        restarts: int = 1,
        n_target_classes: int = 9,
        alpha_max: float = 0.1,
        eta: float = 1.05,
        beta: float = 0.9,
        **common: Any,
    ) -> None:
        super().__init__(model, eps, **common)
        self.steps = check_int("steps", steps)
        self.restarts = check_int("restarts", restarts)
        self.n_target_classes = check_int("n_target_classes", n_target_classes)
        self.alpha_max = float(alpha_max)
        if not 0.0 <= self.alpha_max <= 1.0:
            raise ValueError(f"alpha_max={alpha_max!r} is not allowed; expected [0, 1]")
        self.eta = check_positive("eta", eta, allow_none=False)
        self.beta = float(beta)
        if not 0.0 < self.beta < 1.0:
            raise ValueError(f"beta={beta!r} is not allowed; expected a number in (0, 1)")

    def perturb(
        self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> AttackResult:
        with torch.no_grad():
            logits = self.model(x)
        targets = (
            target[:, None] if target is not None else top_targets(logits, y, self.n_target_classes)
        )
        # Best's "loss" is minus the distance: success first, then the smallest perturbation
        best = Best(x)
        fooled = self.success_of(logits, y, target)
        best.update(None, x, fooled, torch.where(fooled, 0.0, float("-inf")).to(x))
        gen = self.generator()

        def run(idx: torch.Tensor, r: int) -> tuple[torch.Tensor, ...]:
            t = targets[idx, r // self.restarts]
            start = None
            if r % self.restarts:
                radius = torch.minimum(-best.loss[idx], torch.tensor(self.eps).to(x)) / 2
                start = self._random_point(x[idx], radius, gen)
            found, d = self.run_once(
                x[idx], y[idx], t, None if target is None else target[idx], start
            )
            return found, d <= self.eps, -d

        if self.eps > 0:  # at eps = 0 only the clean point counts
            until_success(best, targets.shape[1] * self.restarts, run)
        # AutoAttack's use: robust accuracy at eps, so judge the point inside the eps-ball
        x_adv = project(best.x_adv, x, self.eps, self.norm)
        with torch.no_grad():
            logits = self.model(x_adv)
        loss = -margin_loss(logits, target) if target is not None else margin_loss(logits, y)
        return AttackResult(x_adv, self.success_of(logits, y, target), loss)

    def _random_point(
        self, x: torch.Tensor, radius: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        """A random point at distance ``radius`` (per example) from ``x``, clipped to the box."""
        if self.norm == "linf":
            u = 2 * torch.rand(x.shape, generator=gen, device="cpu").to(x) - 1
        else:
            u = torch.randn(x.shape, generator=gen, device="cpu").to(x)
        u = u / rows(dist(u, self.norm).clamp_min(1e-12), u)
        radius = radius.nan_to_num(0.0, posinf=self.eps)
        return (x + rows(radius, x) * u).clamp(0.0, 1.0)

    def run_once(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        t: torch.Tensor,
        target: torch.Tensor | None,
        start: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One FAB run toward class ``t``: the closest adversarial point found and its
        distance (``inf`` where none was found)."""
        n = len(x)
        x0 = x.flatten(1)
        found = x.clone()
        best_d = torch.full((n,), float("inf"), dtype=x.dtype, device=x.device)
        x1 = x.clone() if start is None else start

        def gap(logits: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
            # FAB-T's hyperplane is f_t = f_y (success: not y). To *reach* a given target
            # every other class is a rival; a hard max over them switches between rivals
            # from step to step and oscillates, so linearise the smooth lower bound
            # f_t - logsumexp_{j != t} f_j of the target's margin (> 0: t is predicted)
            if target is not None:
                rivals = logits.masked_fill(F.one_hot(t, logits.shape[1]).bool(), float("-inf"))
                return logits.gather(1, t[:, None]).squeeze(1) - rivals.logsumexp(1)
            return (logits.gather(1, t[:, None]) - logits.gather(1, yy[:, None])).squeeze(1)

        for _ in range(self.steps):
            # linearise f_t - f_y at x1: value + grad . (z - x1) = 0 (1907.02044, Sec. 3)
            value, _, grad = self.gradient(x1, y, gap)
            w = grad.flatten(1)
            flat = x1.flatten(1)
            c = value - (w * flat).sum(1)
            d = boundary_projection(
                torch.cat([flat, x0]), torch.cat([w, w]), torch.cat([c, c]), self.norm
            )
            d1, d2 = d[:n], d[n:]
            a1 = dist(d1, self.norm).clamp_min(1e-8)
            a2 = dist(d2, self.norm).clamp_min(1e-8)
            # Sec. 3: bias toward the original point's projection, alpha in [0, alpha_max]
            alpha = (a1 / (a1 + a2)).clamp(0.0, self.alpha_max)[:, None]
            nxt = (1 - alpha) * (flat + self.eta * d1) + alpha * (x0 + self.eta * d2)
            x1 = nxt.clamp(0.0, 1.0).view_as(x)
            with torch.no_grad():
                adv = self.success_of(self.model(x1), y, target)
            size = dist(x1 - x, self.norm)
            better = adv & (size < best_d)
            found = torch.where(rows(better, x), x1, found)
            best_d = torch.where(better, size, best_d)
            # backward step toward the original point once adversarial (Sec. 3)
            x1 = torch.where(rows(adv, x), x + self.beta * (x1 - x), x1)
            if bool((best_d <= self.eps).all()):  # all inside the eps-ball: done at this eps
                break
        return found, best_d
