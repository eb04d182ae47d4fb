"""Checks of the values every pillar takes: an eps-ball's radius and norm, counts and sizes.

One place for each rule, so an attack, a defense and a certificate reject the same bad value
with the same message (``ValueError`` naming the value and what is allowed).
"""

from __future__ import annotations

import math

#: the perturbation norms of the threat model (pixel space [0, 1])
NORMS = ("linf", "l2")


def check_eps(eps: float, name: str = "eps") -> float:
    """A finite radius ``>= 0`` as a float, else ValueError naming it."""
    if isinstance(eps, bool) or not (
        isinstance(eps, int | float) and math.isfinite(eps) and eps >= 0
    ):
        raise ValueError(f"{name}={eps!r} is not allowed; expected a finite number >= 0")
    return float(eps)


def check_norm(norm: str) -> str:
    """One of :data:`NORMS`, else ValueError naming it."""
    if norm not in NORMS:
        raise ValueError(f"norm {norm!r} is not known; allowed: {', '.join(NORMS)}")
    return norm


def check_int(name: str, value: int, low: int = 1) -> int:
    """An integer option ``>= low`` (steps, restarts, ...), else ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}={value!r} is not allowed; expected an integer >= {low}")
    return value


def check_positive(name: str, value: float | None, allow_none: bool = True) -> float | None:
    """A finite number > 0 (or None where a default is derived), else ValueError naming it."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not (
        isinstance(value, int | float) and math.isfinite(value) and value > 0
    ):
        raise ValueError(f"{name}={value!r} is not allowed; expected a finite number > 0")
    return float(value)
