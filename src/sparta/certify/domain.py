"""The input set: an Lp ball around each example intersected with the pixel box [0, 1]."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparta.checks import NORMS, check_eps, check_norm  # noqa: F401  (re-exported)


def _dot(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.einsum("sbn,bn->sb", a, v)


@dataclass
class InputDomain:
    """``{x' : ||x' - x||_p <= eps} ∩ [0, 1]^d`` for a batch ``x`` (B, *shape)."""

    x: torch.Tensor
    eps: float
    norm: str = "linf"

    def __post_init__(self) -> None:
        self.eps = check_eps(self.eps)
        self.norm = check_norm(self.norm)

    def box(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The Linf box of radius eps clipped to [0, 1] (contains the L2 ball ∩ box too)."""
        return (self.x - self.eps).clamp(0, 1), (self.x + self.eps).clamp(0, 1)

    def concretize(
        self,
        a: torch.Tensor,
        bias: torch.Tensor,
        point: bool = False,
        box: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Minimum of ``a . x' + bias`` over the domain, for ``a`` (S, B, *shape).

        Returns ``(lower (S, B), argmin point (S, B, *shape) or None)``. For L2 the box bound
        and the dual-norm bound (``a . x - eps ||a||_2``) are both sound; the larger is kept.
        ``box`` replaces the input box (Linf: the exact box of an elementwise image of it).
        """
        lo, up = self.box() if box is None else box
        flat = a.flatten(2)
        c, r = ((up + lo) / 2).flatten(1), ((up - lo) / 2).flatten(1)
        lower = _dot(flat, c) - _dot(flat.abs(), r) + bias
        if self.norm == "l2":
            x = self.x.flatten(1)
            lower = torch.maximum(lower, (flat * x).sum(-1) - self.eps * flat.norm(dim=-1) + bias)
        if not point:
            return lower, None
        with torch.no_grad():
            if self.norm == "linf":
                best = torch.where(a > 0, lo, up)
            else:
                scale = flat.norm(dim=-1).clamp_min(1e-12)
                step = a / scale.reshape(*a.shape[:2], *([1] * (a.dim() - 2)))
                best = (self.x - self.eps * step).clamp(0, 1)
        return lower, best
