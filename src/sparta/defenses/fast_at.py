"""Fast adversarial training (Wong, Rice & Kolter 2020, arXiv 2001.03994, Alg. 3).

FGSM from a uniform random point of the eps-ball with step alpha = 1.25 eps (Sec. 4:
the random start plus this step size is what avoids catastrophic overfitting), then one
SGD step on the cross-entropy at that point.
"""

from __future__ import annotations

from typing import Any

from sparta.defenses.pgd_at import PGDAdversarialTraining
from sparta.train.objectives import Objective, register_objective


class FastAdversarialTraining(PGDAdversarialTraining):
    """Objective: PGD-AT with one step of size ``alpha`` (default 1.25 eps) from a uniform
    random start; the result is projected back onto the ball and [0, 1]."""

    def __init__(
        self,
        eps: float = 0.1,
        norm: str = "linf",
        alpha: float | None = None,
        seed: int = 0,
        label_smoothing: float = 0.0,
        **_: Any,
    ) -> None:
        super().__init__(eps, norm, 1, alpha, seed, label_smoothing)
        self.alpha = alpha if alpha is not None else 1.25 * self.eps  # 2001.03994, Sec. 4


@register_objective(
    "fast", adversarial=True, summary="Fast-AT (Wong et al. 2020): one FGSM step, random start"
)
def _fast(**options: Any) -> Objective:
    return FastAdversarialTraining(**options)
