"""Square Attack (Andriushchenko et al. 2020, 1912.00049, Sec. 3, Alg. 1-3).

A score-based black-box random search. Linf (Sec. 3.1, Alg. 2): start from vertical stripes
of +-eps, then at each iteration set one random square window (per example, one sign per
channel) to +-eps and keep the proposal if it lowers the loss. L2 (Sec. 3.2, Alg. 3): start
from a grid of "eta" bumps, then move the mass of a second random window into the first,
reshaped as a new eta bump, keeping the perturbation's norm at eps. Only examples not yet
fooled are queried; window positions are drawn per example, so the loop is fully batched.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from sparta import progress

from .base import Attack, AttackResult, ce_loss, margin_loss, register_attack
from .zo import check_budget, query

#: 1912.00049, Sec. 4 / App. and the reference code: p is halved after these iterations of
#: a 10,000-query run; with another budget the iteration is rescaled to 10,000 first.
P_HALVING = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
LOSSES = ("margin", "ce")
_MAX_RESAMPLES = 10


def p_schedule(it: int, n_queries: int, p_init: float) -> float:
    """Fraction ``p`` of the image a square covers at iteration ``it`` of ``n_queries``."""
    rescaled = int(it / n_queries * 10000)
    return p_init / 2 ** sum(rescaled > t for t in P_HALVING)


def square_side(p: float, n_features: int, channels: int, size: int, norm: str = "linf") -> int:
    """Side ``round(sqrt(p * n_features / c))`` of a square, kept in ``[1, size]``; for L2 at
    least 3 and odd (reference code), so an eta bump has a centre."""
    side = int(round(math.sqrt(p * n_features / channels)))
    if norm == "l2":
        side = max(side, 3) + (max(side, 3) % 2 == 0)
    return min(max(side, 1), size)


def _rectangles(a: int, b: int) -> torch.Tensor:
    """Concentric rectangles around (a // 2, b // 2): ring r gets sum_{k >= r} 1/(k+1)^2
    (Sec. 3.2, the M^(r, s) of Alg. 3), normalised to unit Frobenius norm."""
    ring = torch.maximum(
        (torch.arange(a) - a // 2).abs()[:, None], (torch.arange(b) - b // 2).abs()[None, :]
    )
    n_rings = max(a // 2 + 1, b // 2 + 1)
    tail = (1.0 / torch.arange(1, n_rings + 1, dtype=torch.float64) ** 2).flip(0).cumsum(0).flip(0)
    m = tail[ring].float()
    return m / m.norm().clamp_min(1e-12)


def eta(side: int, transpose: bool) -> torch.Tensor:
    """The L2 update shape (Sec. 3.2): +rectangles on the top half, - on the bottom half."""
    top = side // 2
    m = torch.cat([_rectangles(top, side), -_rectangles(side - top, side)])
    m = m / m.norm()
    return m.T if transpose else m


def _l2(v: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    return v.pow(2).sum(dims, keepdim=True).sqrt()


@register_attack("square")
class Square(Attack):
    """Square Attack (Linf or L2) with ``n_queries`` queries per example (the initial one counts).

    Untargeted: minimises the margin ``z_y - max_{j != y} z_j`` (``loss="margin"``, the
    paper's choice) or maximises CE (``loss="ce"``); targeted: minimises CE to the target
    (Sec. 3). ``p_init`` is AutoAttack's default 0.8. ``AttackResult.loss`` is the value the
    attack maximises (margin loss > 0: misclassified; -CE to the target when targeted).
    """

    black_box = True

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        n_queries: int = 5000,
        p_init: float = 0.8,
        loss: str = "margin",
        max_batch: int = 4096,
        **common: Any,
    ) -> None:
        super().__init__(model, eps, **common)
        if loss not in LOSSES:
            raise ValueError(f"loss {loss!r} is not known for square; allowed: {LOSSES}")
        if not 0 < p_init <= 1:
            raise ValueError(f"p_init={p_init!r} is not allowed; expected a number in (0, 1]")
        self.n_queries = check_budget(n_queries)
        self.p_init, self.loss, self.max_batch = p_init, loss, max_batch

    def _objective(
        self, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> torch.Tensor:
        if target is not None:
            return -ce_loss(logits, target)
        return margin_loss(logits, y) if self.loss == "margin" else ce_loss(logits, y)

    def _window(
        self, n: int, h: int, w: int, side: int, gen: torch.Generator, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A random ``side`` x ``side`` window per example: a (N, 1, H, W) mask and, per
        pixel, its (row, column) inside the window (clamped outside it)."""
        top = torch.randint(0, h - side + 1, (n, 1, 1, 1), generator=gen).to(device)
        left = torch.randint(0, w - side + 1, (n, 1, 1, 1), generator=gen).to(device)
        rows = torch.arange(h, device=device).view(1, 1, h, 1) - top
        cols = torch.arange(w, device=device).view(1, 1, 1, w) - left
        mask = (rows >= 0) & (rows < side) & (cols >= 0) & (cols < side)
        return mask, rows.clamp(0, side - 1), cols.clamp(0, side - 1)

    def _signs(self, shape: tuple[int, ...], gen: torch.Generator, like: torch.Tensor):
        return torch.randint(0, 2, shape, generator=gen).to(like) * 2 - 1

    def _init(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n, c, h, w = x.shape
        if self.norm == "linf":
            # Alg. 2, init: vertical stripes of width 1, one random sign per column and channel
            return (x + self.eps * self._signs((n, c, 1, w), gen, x)).clamp(0.0, 1.0)
        # Alg. 3, init: a grid of eta bumps of side h // 5 (random sign per example, channel
        # and tile; random orientation per tile), centred, normalised to norm eps
        side = max(h // 5, 1)
        ih = torch.arange(h) - max((h - 5 * side) // 2, 0)
        iw = torch.arange(w) - max((w - 5 * side) // 2, 0)
        th, tw = ih.clamp(min=0) // side, iw.clamp(min=0) // side
        flip = torch.rand(int(th[-1]) + 1, int(tw[-1]) + 1, generator=gen) < 0.5
        ph, pw = (ih.clamp(min=0) % side)[:, None], (iw.clamp(min=0) % side)[None, :]
        bump = eta(side, False)
        pattern = torch.where(flip[th][:, tw], bump.T[ph, pw], bump[ph, pw])
        pattern = pattern * ((ih >= 0)[:, None] & (iw >= 0)[None, :])
        signs = self._signs((n, c, len(flip), flip.shape[1]), gen, x)
        delta = pattern.to(x) * signs[:, :, th.to(x.device)][:, :, :, tw.to(x.device)]
        return (x + self.eps * delta / _l2(delta, (1, 2, 3)).clamp_min(1e-12)).clamp(0.0, 1.0)

    def _propose(
        self,
        x: torch.Tensor,
        x_best: torch.Tensor,
        side: int,
        gen: torch.Generator,
        bounds: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """One random-search proposal per example that differs from ``x_best``, inside the
        eps-ball and [0, 1] (``bounds``: the Linf ball and the box as per-pixel bounds)."""
        n, c, h, w = x.shape
        if self.norm == "l2":
            x_new = self._propose_l2(x, x_best, side, gen)
            # the reference code redraws a window that would leave the point unchanged
            for _ in range(_MAX_RESAMPLES):
                same = (x_new == x_best).flatten(1).all(1)
                if not same.any():
                    break
                x_new[same] = self._propose_l2(x[same], x_best[same], side, gen)
            return x_new
        # Alg. 2: the window set to x +- eps (one sign per channel), clipped to the box
        lo, hi = bounds
        window = self._window(n, h, w, side, gen, x.device)[0]
        sign = self._signs((n, c, 1, 1), gen, x)
        x_new = torch.where(window, torch.where(sign > 0, hi, lo), x_best)
        # a proposal that leaves the point unchanged gets new signs, the window kept (the
        # reference code's resampling); with one channel that is the other sign, which
        # always changes it (lo < hi)
        for _ in range(_MAX_RESAMPLES):
            same = (x_new == x_best).flatten(1).all(1)
            if not same.any():
                break
            i = same.nonzero().squeeze(1)
            sign[i] = -sign[i] if c == 1 else self._signs((len(i), c, 1, 1), gen, x)
            x_new[i] = torch.where(window[i], torch.where(sign[i] > 0, hi[i], lo[i]), x_best[i])
            if c == 1:
                break
        return x_new

    def _propose_l2(
        self, x: torch.Tensor, x_best: torch.Tensor, side: int, gen: torch.Generator
    ) -> torch.Tensor:
        """Alg. 3: window 2's mass moves into window 1, whose content becomes its old
        direction plus a fresh eta bump, rescaled so the whole perturbation keeps norm eps."""
        n, c, h, w = x.shape
        window, wr, wc = self._window(n, h, w, side, gen, x.device)
        sign = self._signs((n, c, 1, 1), gen, x)
        window2 = self._window(n, h, w, side, gen, x.device)[0]
        delta = x_best - x
        both = window | window2
        bump = eta(side, bool(torch.rand((), generator=gen) < 0.5)).to(x)[wr, wc] * window
        old = delta * window
        new = bump * sign + old / (_l2(old, (2, 3)) + 1e-12)
        room = (self.eps**2 - _l2(delta, (1, 2, 3)) ** 2).clamp_min(0) / c
        new = new / (_l2(new, (2, 3)) + 1e-12) * (room + _l2(delta * both, (1, 2, 3)) ** 2).sqrt()
        delta = delta * ~both + new
        return (x + self.eps * delta / (_l2(delta, (1, 2, 3)) + 1e-12)).clamp(0.0, 1.0)

    def perturb(
        self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> AttackResult:
        if x.ndim != 4:
            raise ValueError(f"square needs NCHW images, got inputs of shape {tuple(x.shape)}")
        gen = self.generator()
        n, c, h, w = x.shape
        x_best = self._init(x, gen)
        logits = query(self.model, x_best, self.max_batch)
        obj_best = self._objective(logits, y, target)
        success = self.success_of(logits, y, target)
        queries = torch.ones(n, dtype=torch.long, device=x.device)
        # the working set: the examples not yet fooled, compacted only when some are
        act = (~success).nonzero().squeeze(1)
        lo = (x[act] - self.eps).clamp_(min=0.0)
        hi = (x[act] + self.eps).clamp_(max=1.0)
        work = [x[act], x_best[act], obj_best[act], y[act], lo, hi]
        if target is not None:
            work.append(target[act])
        steps = range(self.n_queries - 1 if self.eps > 0 else 0)
        for it in progress.bar(steps, desc="square queries", unit="query"):
            if act.numel() == 0:
                break
            xi, xb, ob, yi, lo, hi = work[:6]
            ti = work[6] if target is not None else None
            p = p_schedule(it, self.n_queries, self.p_init)
            side = square_side(p, c * h * w, c, min(h, w), self.norm)
            x_new = self._propose(xi, xb, side, gen, (lo, hi))
            logits = query(self.model, x_new, self.max_batch)
            queries[act] += 1
            obj = self._objective(logits, yi, ti)
            succ = self.success_of(logits, yi, ti)
            better = succ | (obj > ob)
            if bool(better.any()):
                xb[better], ob[better] = x_new[better], obj[better]
            if bool(succ.any()):  # done: back to the full batch, out of the working set
                done = act[succ]
                x_best[done], obj_best[done], success[done] = xb[succ], ob[succ], True
                keep = ~succ
                act, work = act[keep], [t[keep] for t in work]
        x_best[act], obj_best[act] = work[1], work[2]
        return AttackResult(x_best, success, obj_best, queries)
