"""IBP certified training (Gowal et al. 2018, arXiv 1810.12715, Sec. 3-4).

The objective mixes the natural loss with the loss at the worst-case logits that interval
bound propagation allows inside the eps-ball (Eq. 9 there)::

    loss = kappa * CE(z(x), y) + (1 - kappa) * CE(z_hat(x, eps), y)

where ``z_hat_j = -(lower bound of z_y - z_j)`` (0 at ``j = y``): the specification is folded
into the last layer (Sec. 3, Eq. 8), which is tighter than "z_y lower, the others upper".
Training starts at ``eps = 0, kappa = 1`` and ramps both linearly, ``eps`` to its target and
``kappa`` to ``kappa_end``. Gowal et al. (Sec. 4 and App. B, MNIST): 60K steps of batch 100,
2K warm-up steps at ``eps = 0``, then a 10K-step ramp, ``kappa_end = 0.5``, and
``eps_train = 1.1 * eps_test`` (IBP's looseness at the test eps). The ramp is the callback
:class:`IBPSchedule`, which sets the objective's ``eps`` and ``kappa`` before every step.

Bounds come from :func:`sparta.certify.bounds` (IBP is differentiable there); they bound the
eval-mode network (BatchNorm with its running statistics), so prefer BN-free models.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from sparta.checks import check_eps
from sparta.data import as_dataset
from sparta.models.utils import bare, device_of, eval_mode
from sparta.train.callbacks import Callback
from sparta.train.objectives import Objective, register_objective

if TYPE_CHECKING:
    from sparta.data import ImageDataset
    from sparta.train.loop import Trainer

# Gowal et al. 2018, Sec. 4 / App. B (MNIST): warm-up and ramp lengths out of 60K steps
GOWAL_WARMUP_FRACTION = 2_000 / 60_000
GOWAL_RAMP_FRACTION = 10_000 / 60_000
KAPPA_END = 0.5  # Gowal et al. 2018, Sec. 4: kappa goes from 1 to 0.5
EPS_TRAIN_FACTOR = 1.1  # Gowal et al. 2018, App. B: train at 1.1 x the test eps (MNIST)


def worst_case_logits(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, method: str = "ibp"
) -> torch.Tensor:
    """``-margin_lower``: logits an adversary inside the ball could at worst reach, relative
    to the true class (0 at ``y``), from the differentiable bounds of ``method``."""
    from sparta.certify import bounds

    b = bounds(bare(model), x, eps, method=method, y=y)
    return -b.margin_lower


class IBPTraining:
    """Objective ``kappa * CE(clean) + (1 - kappa) * CE(IBP worst case at eps)``.

    ``eps`` and ``kappa`` are attributes that :class:`IBPSchedule` changes while training;
    alone, the objective trains at the given values. Returns the clean logits.
    """

    def __init__(self, eps: float = 0.1, kappa: float = KAPPA_END, method: str = "ibp") -> None:
        check_eps(eps)
        _check_kappa(kappa, "kappa")
        self.eps, self.kappa, self.method = float(eps), float(kappa), method

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        if self.kappa < 1 and self.eps > 0:  # at eps = 0 the worst case is the clean loss
            robust = F.cross_entropy(worst_case_logits(model, x, y, self.eps, self.method), y)
            loss = self.kappa * loss + (1 - self.kappa) * robust
        return loss, logits


@register_objective(
    "ibp", certified=True, summary="certified training: kappa * CE + (1 - kappa) * IBP bound"
)
def _ibp(eps: float = 0.1, kappa: float = KAPPA_END, method: str = "ibp", **_: Any) -> Objective:
    return IBPTraining(eps, kappa, method)


def _check_kappa(kappa: float, name: str) -> None:
    if not isinstance(kappa, (int, float)) or not 0 <= kappa <= 1:
        raise ValueError(f"{name}={kappa!r} is not allowed; expected a number in [0, 1]")


_STEPS = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ep|it)?\s*$")


def parse_steps(value: str | float | int, steps_per_epoch: int, name: str = "steps") -> int:
    """Optimizer steps from ``"2ep"`` (epochs), ``"500it"`` (steps) or a bare number
    (epochs)."""
    m = _STEPS.match(str(value))
    if m is None:
        raise ValueError(
            f"{name}={value!r} is not allowed; expected a length like '2ep', '0.5ep' or '500it'"
        )
    amount, unit = float(m.group(1)), m.group(2) or "ep"
    return round(amount * steps_per_epoch) if unit == "ep" else round(amount)


def ramp_values(
    step: int, eps: float, kappa_end: float, warmup: int, ramp: int
) -> tuple[float, float]:
    """``(eps, kappa)`` at ``step``: 0 and 1 during the warm-up, linear over the ramp, then
    ``eps`` and ``kappa_end`` (Gowal et al. 2018, Sec. 4)."""
    if step < warmup:
        t = 0.0
    elif ramp <= 0:
        t = 1.0
    else:
        t = min(1.0, (step - warmup) / ramp)
    return eps * t, 1.0 + (kappa_end - 1.0) * t


class IBPSchedule(Callback):
    """Ramps an :class:`IBPTraining` objective's ``eps`` (0 -> ``eps``) and ``kappa``
    (1 -> ``kappa_end``) linearly over ``ramp`` after ``warmup`` (``"2ep"``, ``"500it"``, or
    epochs as a number; None: 1/30 and 1/6 of training, Gowal et al.'s 2K and 10K of 60K).
    Sets them before every step from ``trainer.step``, so a resumed run continues the ramp
    where it stopped. Logs ``cert_eps`` and ``cert_kappa`` per epoch."""

    name = "ibp_schedule"

    def __init__(
        self,
        objective: IBPTraining,
        eps: float,
        kappa_end: float = KAPPA_END,
        warmup: str | float | None = None,
        ramp: str | float | None = None,
    ) -> None:
        check_eps(eps)
        _check_kappa(kappa_end, "kappa_end")
        for name, value in (("warmup", warmup), ("ramp", ramp)):
            if value is not None:
                parse_steps(value, 1, name)
        self.objective, self.eps, self.kappa_end = objective, float(eps), float(kappa_end)
        self.warmup, self.ramp = warmup, ramp
        self._steps = (0, 0)

    def _set(self, step: int) -> None:
        self.objective.eps, self.objective.kappa = ramp_values(
            step, self.eps, self.kappa_end, *self._steps
        )

    def resolve(self, steps_per_epoch: int, total_steps: int) -> tuple[int, int]:
        """Warm-up and ramp lengths in steps (default: Gowal et al.'s shares of training)."""
        warmup = (
            round(GOWAL_WARMUP_FRACTION * total_steps)
            if self.warmup is None
            else parse_steps(self.warmup, steps_per_epoch, "warmup")
        )
        ramp = (
            round(GOWAL_RAMP_FRACTION * total_steps)
            if self.ramp is None
            else parse_steps(self.ramp, steps_per_epoch, "ramp")
        )
        return warmup, ramp

    def on_fit_start(self, trainer: Trainer) -> None:
        self._steps = self.resolve(trainer.steps_per_epoch, trainer.total_steps)
        self._set(trainer.step)

    def after_step(self, trainer: Trainer) -> None:
        self._set(trainer.step)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        metrics.update(cert_eps=self.objective.eps, cert_kappa=self.objective.kappa)


@torch.no_grad()
def verified_fraction(
    model: nn.Module,
    data: ImageDataset,
    eps: float,
    method: str = "ibp",
    batch_size: int = 256,
) -> float:
    """Fraction of ``data`` whose margins at ``eps`` are certified positive by ``method``
    (sound, incomplete: a lower bound on robust accuracy). Restores the model's mode."""
    from sparta.certify import bounds

    check_eps(eps)
    data = as_dataset(data)
    device = device_of(model)
    verified = 0
    with eval_mode(model):
        for start in range(0, len(data), batch_size):
            x = data.x[start : start + batch_size].to(device)
            y = data.y[start : start + batch_size].to(device)
            verified += int(bounds(model, x, eps, method=method, y=y).verified.sum())
    return verified / max(len(data), 1)


class CertifiedValidation(Callback):
    """Adds ``val_verified_acc`` (verified by ``method`` at ``eps`` on at most ``n`` validation
    examples) to every epoch's metrics."""

    name = "certified_validation"

    def __init__(
        self, data: ImageDataset, eps: float, method: str = "ibp", n: int | None = None
    ) -> None:
        data = as_dataset(data)
        self.data = data if n is None or n >= len(data) else data.take(n, seed=0)
        self.eps, self.method = float(eps), method

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        metrics["val_verified_acc"] = verified_fraction(
            trainer.model, self.data, self.eps, self.method
        )


__all__ = [
    "EPS_TRAIN_FACTOR",
    "KAPPA_END",
    "CertifiedValidation",
    "IBPSchedule",
    "IBPTraining",
    "parse_steps",
    "ramp_values",
    "verified_fraction",
    "worst_case_logits",
]
