"""Learning-rate schedules as pure functions of the step, so a resumed run needs no state."""

from __future__ import annotations

import math
from collections.abc import Sequence


def lr_factor(
    step: int,
    total_steps: int,
    kind: str = "cosine",
    warmup_steps: int = 0,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
) -> float:
    """Multiplier of the peak learning rate at ``step`` (0-based) of ``total_steps``.

    - ``constant``: 1.
    - ``step``: multiplied by ``gamma`` at each milestone step passed.
    - ``cosine``: half-cosine from 1 to 0 over the steps after warm-up.
    - ``onecycle``: linear up over warm-up (or the first 30% when warm-up is 0), then
      cosine down to 0, as in Smith & Topin's one-cycle policy.
    Linear warm-up from ``1/warmup_steps`` to 1 precedes every schedule.
    """
    if kind == "onecycle" and warmup_steps == 0:
        warmup_steps = max(1, int(0.3 * total_steps))
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    if kind == "step":
        return gamma ** sum(step >= m for m in milestones)
    if kind in ("cosine", "onecycle"):
        span = max(1, total_steps - warmup_steps)
        t = min(1.0, (step - warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * t))
    raise ValueError(f"schedule {kind!r} is not known; allowed: constant, step, cosine, onecycle")
