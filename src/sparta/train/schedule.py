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


def cycle_plan(total_steps: int, cycles: int, fraction: float) -> tuple[int, int]:
    """``(start, length)`` of ``cycles`` equal learning-rate cycles filling the last
    ``fraction`` of ``total_steps``: each cycle has ``floor(fraction * total / cycles)`` steps
    (at least 1) and the cycles end exactly at ``total_steps``, as the reference code of
    Sup-tickets (2205.15322) rounds its cyclic epochs down to a multiple of the cycle."""
    if cycles < 1:
        raise ValueError(f"cycles={cycles!r} is not allowed; expected an integer >= 1")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction={fraction!r} is not allowed; expected a number in (0, 1]")
    length = max(1, int(fraction * total_steps) // cycles)
    start = total_steps - cycles * length
    if start < 0:
        raise ValueError(
            f"{cycles} cycles do not fit in {total_steps} training steps; train longer or use "
            "fewer cycles"
        )
    return start, length


def cyclic_factor(step: int, start: int, length: int, high: float, low: float) -> float:
    """The multiplier at ``step`` (0-based, ``>= start``) of cosine cycles of ``length`` steps
    from ``start``: each cycle anneals from ``high`` at its first step to ``low`` at its last
    (``low + (high - low) / 2 (1 + cos(pi i / (length - 1)))``, ``i`` the step in the cycle),
    so every cycle ends at the low rate where its ticket is taken (Sup-tickets, 2205.15322:
    cheap tickets from cyclic learning rates)."""
    if step < start:
        raise ValueError(f"step {step} is before the first cycle (step {start})")
    i = (step - start) % length
    t = i / (length - 1) if length > 1 else 1.0
    return low + 0.5 * (high - low) * (1.0 + math.cos(math.pi * t))
