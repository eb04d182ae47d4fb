"""Zeroth-order (score-based) attacks from randomized and coordinate-wise gradient estimates.

The estimators live in :mod:`sparta.train.zo` (shared with zeroth-order training, DeepZero,
2310.02025) and are re-exported here (``sparta.attacks.zo.rge/cge/query``):

- RGE (DeepZero, as summarised in PAPERS.md; Liu et al. 2020, "A Primer on Zeroth-Order
  Optimization in Signal Processing and Machine Learning", 2006.06224):
  ``g = phi(d) / (q mu) * sum_i (f(x + mu u_i) - f(x)) u_i`` with ``u_i`` uniform on the
  unit sphere (``phi(d) = d``) or standard Gaussian (``phi(d) = 1``).
- CGE (DeepZero; ZOO, Chen et al. 2017, 1708.03999, Sec. 3, in its forward-difference
  form): ``g_i = (f(x + mu e_i) - f(x)) / mu`` over all or a subset of the coordinates.

The attack plugs an estimate of the gradient of the Carlini-Wagner margin into a projected
sign step (ZO-signSGD, Liu et al., "signSGD via Zeroth-Order Oracle", ICLR 2019; Linf) or a
normalised step (ZO-PGD; L2). Every model call goes through :func:`query` (no gradients,
chunked), and every row of every call is charged to its example: ``AttackResult.queries``
is exact.
"""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import nn

from sparta.checks import check_int
from sparta.train.zo import DISTRIBUTIONS, Oracle, cge, query, rge

from .base import (
    Attack,
    AttackResult,
    get_loss,
    normalize_step,
    project,
    random_start,
    register_attack,
)

__all__ = ["DISTRIBUTIONS", "ZOCGE", "ZORGE", "Oracle", "ZOAttack", "cge", "query", "rge"]


def check_budget(n_queries: int) -> int:
    """A query budget must be an integer >= 1."""
    return check_int("n_queries", n_queries)


class ZOAttack(Attack):
    """ZO-signSGD (Linf) / ZO-PGD (L2) on the margin loss with a query budget per example.

    Each iteration queries the current point once (to stop on success and keep the best
    point), then spends ``cost`` queries on a gradient estimate and takes one projected step,
    so at most ``1 + steps * (cost + 1) <= n_queries`` queries per example. ``steps`` (default:
    as many as the budget allows), ``step_size`` (default 2.5 eps / steps, Madry et al.),
    ``mu`` the finite-difference radius, ``max_batch`` rows per model call.
    """

    black_box = True

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        n_queries: int = 5000,
        steps: int | None = None,
        step_size: float | None = None,
        mu: float = 0.005,
        loss: str = "margin",
        random_start: bool = False,
        max_batch: int = 4096,
        **common: Any,
    ) -> None:
        super().__init__(model, eps, **common)
        self.n_queries = check_budget(n_queries)
        if steps is not None:
            check_int("steps", steps, 0)
        if not mu > 0:
            raise ValueError(f"mu={mu!r} is not allowed; expected a number > 0")
        self.steps, self.step_size, self.mu = steps, step_size, float(mu)
        self.loss_fn = get_loss(loss)
        self.random_start = random_start
        self.max_batch = max_batch

    @abc.abstractmethod
    def cost(self, d: int) -> int:
        """Queries per example of one gradient estimate in dimension ``d``."""

    @abc.abstractmethod
    def estimate(
        self, f: Oracle, x: torch.Tensor, fx: torch.Tensor, gen: torch.Generator, batch: int
    ) -> torch.Tensor:
        """Gradient estimate of ``f`` at ``x`` (``fx = f(x)`` known)."""

    def _objective(
        self, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> torch.Tensor:
        """Per-example value the attack maximises (margin > 0: misclassified)."""
        return self.loss_fn(logits, y) if target is None else -self.loss_fn(logits, target)

    def perturb(
        self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> AttackResult:
        gen = self.generator()
        n = len(x)
        cost = self.cost(x[0].numel())
        steps = (self.n_queries - 1) // (cost + 1)
        steps = steps if self.steps is None else min(steps, self.steps)
        steps = steps if self.eps > 0 else 0  # nothing to search: spend one query per example
        alpha = self.step_size if self.step_size is not None else 2.5 * self.eps / max(steps, 1)
        x_adv = random_start(x, self.eps, self.norm, gen) if self.random_start else x.clone()
        best_x, best_obj = x_adv.clone(), torch.full((n,), -torch.inf, device=x.device)
        success = torch.zeros(n, dtype=torch.bool, device=x.device)
        queries = torch.zeros(n, dtype=torch.long, device=x.device)
        for step in range(steps + 1):
            idx = (~success).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            xi, yi = x_adv[idx], y[idx]
            ti = None if target is None else target[idx]
            logits = query(self.model, xi, self.max_batch)
            queries[idx] += 1
            obj = self._objective(logits, yi, ti)
            succ = self.success_of(logits, yi, ti)
            better = succ | (obj > best_obj[idx])
            best_x[idx[better]], best_obj[idx[better]] = xi[better], obj[better]
            success[idx] = succ
            if step == steps:
                break
            keep = ~succ
            idx, xi, yi, obj = idx[keep], xi[keep], yi[keep], obj[keep]
            ti = None if ti is None else ti[keep]
            if idx.numel() == 0:
                break

            def f(z: torch.Tensor, yi=yi, ti=ti) -> torch.Tensor:
                m = len(z)
                logits = query(self.model, z.flatten(0, 1), self.max_batch)
                rep = None if ti is None else ti.repeat(m)
                return self._objective(logits, yi.repeat(m), rep).view(m, -1)

            batch = max(1, self.max_batch // len(idx))
            g = self.estimate(f, xi, obj, gen, batch)
            queries[idx] += cost
            x_adv[idx] = project(
                xi + alpha * normalize_step(g, self.norm), x[idx], self.eps, self.norm
            )
        return AttackResult(best_x, success, best_obj, queries)


@register_attack("zo-rge")
class ZORGE(ZOAttack):
    """Zeroth-order attack with the randomized gradient estimate (:func:`rge`).

    ``q`` directions per step (default 20), ``distribution`` "sphere" or "gaussian".
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        q: int = 20,
        distribution: str = "sphere",
        **options: Any,
    ) -> None:
        super().__init__(model, eps, **options)
        if isinstance(q, bool) or not isinstance(q, int) or q < 1:
            raise ValueError(f"q={q!r} is not allowed; expected an integer >= 1")
        if distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"distribution {distribution!r} is not known; allowed: {', '.join(DISTRIBUTIONS)}"
            )
        self.q, self.distribution = q, distribution

    def cost(self, d: int) -> int:
        return self.q

    def estimate(
        self, f: Oracle, x: torch.Tensor, fx: torch.Tensor, gen: torch.Generator, batch: int
    ) -> torch.Tensor:
        return rge(f, x, self.q, self.mu, gen, self.distribution, fx=fx, batch=batch)


@register_attack("zo-cge")
class ZOCGE(ZOAttack):
    """Zeroth-order attack with the coordinate-wise estimate (:func:`cge`).

    ``n_coords`` coordinates per step, drawn at random per example (default ``None``: all
    of them, ``d`` queries per step); the step moves only those coordinates, as ZOO's
    coordinate updates do.
    """

    def __init__(
        self, model: nn.Module, eps: float, n_coords: int | None = None, **options: Any
    ) -> None:
        super().__init__(model, eps, **options)
        if n_coords is not None and (isinstance(n_coords, bool) or n_coords < 1):
            raise ValueError(f"n_coords={n_coords!r} is not allowed; expected an integer >= 1")
        self.n_coords = n_coords

    def cost(self, d: int) -> int:
        return d if self.n_coords is None else min(self.n_coords, d)

    def estimate(
        self, f: Oracle, x: torch.Tensor, fx: torch.Tensor, gen: torch.Generator, batch: int
    ) -> torch.Tensor:
        d = x[0].numel()
        coords = None
        if self.n_coords is not None and self.n_coords < d:
            order = torch.rand(len(x), d, generator=gen).argsort(dim=1)
            coords = order[:, : self.n_coords]
        return cge(f, x, self.mu, coords, fx=fx, batch=batch)
