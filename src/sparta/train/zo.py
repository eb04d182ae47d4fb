"""Zeroth-order gradient estimators (RGE, CGE) and the no-gradient model ``query``.

They live in the training engine (below the pillars) so that zeroth-order *training*
(DeepZero, 2310.02025, Sec. 3) and the zeroth-order attacks (``sparta.attacks.zo``) share one
implementation:

- RGE (DeepZero Sec. 3; Liu et al. 2020, "A Primer on Zeroth-Order Optimization in
  Signal Processing and Machine Learning", 2006.06224):
  ``g = phi(d) / (q mu) * sum_i (f(x + mu u_i) - f(x)) u_i`` with ``u_i`` uniform on the
  unit sphere (``phi(d) = d``) or standard Gaussian (``phi(d) = 1``).
- CGE (DeepZero Sec. 3; ZOO, Chen et al. 2017, 1708.03999, Sec. 3, in its
  forward-difference form): ``g_i = (f(x + mu e_i) - f(x)) / mu`` over all or a subset of
  the coordinates.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

#: ``f`` of the estimators: a stack of ``M`` perturbed copies ``(M, N, *shape)`` -> ``(M, N)``.
Oracle = Callable[[torch.Tensor], torch.Tensor]

DISTRIBUTIONS = ("sphere", "gaussian")


def query(model: nn.Module, x: torch.Tensor, max_batch: int = 4096) -> torch.Tensor:
    """Logits of ``model`` on ``x`` without gradients, ``max_batch`` rows per call."""
    with torch.no_grad():
        return torch.cat([model(chunk) for chunk in x.split(max_batch)])


def _base_value(f: Oracle, x: torch.Tensor, fx: torch.Tensor | None) -> torch.Tensor:
    return f(x[None])[0] if fx is None else fx


def rge(
    f: Oracle,
    x: torch.Tensor,
    q: int,
    mu: float,
    generator: torch.Generator,
    distribution: str = "sphere",
    fx: torch.Tensor | None = None,
    batch: int | None = None,
) -> torch.Tensor:
    """Randomized gradient estimate of ``f`` at each row of ``x`` from ``q`` directions.

    ``f`` maps ``(M, N, *shape)`` to ``(M, N)`` (``M`` perturbed copies of the batch ``x``);
    it is called with at most ``batch`` copies at a time. ``fx`` (``(N,)``) reuses a known
    ``f(x)``; without it one more call evaluates it. Costs ``q`` (+1) evaluations per row.
    Directions come from ``generator`` (CPU), independently per row.
    """
    if distribution not in DISTRIBUTIONS:
        raise ValueError(
            f"distribution {distribution!r} is not known; allowed: {', '.join(DISTRIBUTIONS)}"
        )
    if q < 1:
        raise ValueError(f"q={q!r} is not allowed; expected an integer >= 1")
    fx = _base_value(f, x, fx)
    n, d = len(x), x[0].numel()
    # E[u u^T] = I / d for a unit direction, undone by phi(d) = d (2006.06224, Sec. III)
    scale = d if distribution == "sphere" else 1.0
    grad = torch.zeros(n, d, dtype=x.dtype, device=x.device)
    batch = batch or q
    for start in range(0, q, batch):
        m = min(batch, q - start)
        u = torch.randn(m, n, d, generator=generator, dtype=x.dtype).to(x.device)
        if distribution == "sphere":
            u = u / u.norm(dim=2, keepdim=True).clamp_min(1e-12)
        values = f(x[None] + mu * u.view(m, *x.shape))
        grad += ((values - fx) / mu)[..., None].mul(u).sum(0)
    return (grad * (scale / q)).view_as(x)


def cge(
    f: Oracle,
    x: torch.Tensor,
    mu: float,
    coords: torch.Tensor | None = None,
    fx: torch.Tensor | None = None,
    batch: int | None = None,
) -> torch.Tensor:
    """Coordinate-wise gradient estimate: ``g_i = (f(x + mu e_i) - f(x)) / mu``.

    ``coords``: flat coordinate indices, ``(k,)`` shared by all rows or ``(N, k)`` per row
    (``None``: all ``d``); the estimate is 0 elsewhere. ``f``, ``fx`` and ``batch`` as in
    :func:`rge`. Costs ``k`` (+1) evaluations per row.
    """
    fx = _base_value(f, x, fx)
    n, d = len(x), x[0].numel()
    if coords is None:
        coords = torch.arange(d, device=x.device)
    coords = coords.to(x.device).long().expand(n, -1)  # (N, k)
    k = coords.shape[1]
    flat = x.reshape(n, d)
    grad = torch.zeros(n, d, dtype=x.dtype, device=x.device)
    batch = batch or k
    for start in range(0, k, batch):
        idx = coords[:, start : start + batch].T[..., None]  # (m, N, 1)
        z = flat.expand(len(idx), n, d).clone()
        # x + mu e_i, written as one addition at coordinate i as the formula does
        z.scatter_(2, idx, z.gather(2, idx) + mu)
        values = f(z.view(len(idx), *x.shape))
        grad.scatter_(1, idx[..., 0].T, ((values - fx) / mu).T)
    return grad.view_as(x)
