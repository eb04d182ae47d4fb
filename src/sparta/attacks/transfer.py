"""Transfer attacks (white-box on a surrogate) and the transfer matrix between models.

- ``mi-fgsm``: momentum iterative FGSM (Dong et al. 2018, 1710.06081, Alg. 1):
  ``g <- momentum * g + grad / mean|grad|``, ``x <- Proj(x + alpha sign(g))``, ``alpha = eps/T``
  (L2: ``alpha g / ||g||_2``, Sec. 3.1, Eq. 8).
- ``di-fgsm``: M-DI^2-FGSM (Xie et al. 2019, 1803.06978, Sec. 3.2): MI-FGSM whose gradient is
  taken through a random resize-and-pad of the input, applied with probability
  ``diversity_prob``; ``momentum=0`` gives DI^2-FGSM.
- ``da-pgd``: direction-aggregated PGD (the direction aggregation of 2104.09172 as described
  in PAPERS.md): before each step, the L1-mean-normalised gradients at ``n_samples`` points
  drawn uniformly from the ``radius`` ball around the iterate are averaged.

All three share one loop (:class:`TransferAttack`) and differ in ``direction`` and defaults.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from sparta.checks import check_eps, check_int

from .base import (
    Attack,
    AttackResult,
    create,
    frozen,
    get_loss,
    normalize_step,
    project,
    random_start,
    register_attack,
)
from .zo import query


def _l1_normalise(g: torch.Tensor) -> torch.Tensor:
    """``g / mean|g|`` per example (1710.06081, Alg. 1, line 5, as in its reference code)."""
    scale = g.abs().flatten(1).mean(1).clamp_min(1e-12)
    return g / scale.view(-1, *([1] * (g.ndim - 1)))


class TransferAttack(Attack):
    """Iterative attack with momentum: ``g <- momentum g + direction(x)``, projected steps.

    ``steps`` (default 10), ``step_size`` (default ``eps / steps``, 1710.06081 Sec. 3.1),
    ``momentum``, ``loss`` (default CE), ``random_start``.
    """

    default_momentum = 1.0

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        steps: int = 10,
        step_size: float | None = None,
        momentum: float | None = None,
        loss: str = "ce",
        random_start: bool = False,
        **common: Any,
    ) -> None:
        super().__init__(model, eps, **common)
        self.steps = check_int("steps", steps)
        self.momentum = self.default_momentum if momentum is None else float(momentum)
        if not (math.isfinite(self.momentum) and self.momentum >= 0):
            raise ValueError(f"momentum={momentum!r} is not allowed; expected a number >= 0")
        self.step_size = self.default_step(eps, steps) if step_size is None else step_size
        self.loss_fn = get_loss(loss)
        self.random_start = random_start

    def default_step(self, eps: float, steps: int) -> float:
        return eps / steps

    def transform(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Input transformation the gradient is taken through (identity here)."""
        return x

    def objective_grad(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        gen: torch.Generator,
    ) -> torch.Tensor:
        """Gradient of the per-example objective (loss to ``y``, or -loss to ``target``)
        through :meth:`transform` (the base attack's :meth:`Attack.gradient`)."""
        fn = self.loss_fn if target is None else lambda logits, t: -self.loss_fn(logits, t)
        label = y if target is None else target
        _, _, grad = self.gradient(x, label, fn, transform=lambda v: self.transform(v, gen))
        return grad

    def direction(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        gen: torch.Generator,
    ) -> torch.Tensor:
        return _l1_normalise(self.objective_grad(x, y, target, gen))

    def perturb(
        self, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None
    ) -> AttackResult:
        gen = self.generator()
        x_adv = random_start(x, self.eps, self.norm, gen) if self.random_start else x.clone()
        g = torch.zeros_like(x)
        for _ in range(self.steps):
            g = self.momentum * g + self.direction(x_adv, y, target, gen)
            x_adv = project(
                x_adv + self.step_size * normalize_step(g, self.norm), x, self.eps, self.norm
            )
        logits = query(self.model, x_adv)
        obj = self.loss_fn(logits, y) if target is None else -self.loss_fn(logits, target)
        return AttackResult(x_adv, self.success_of(logits, y, target), obj)


@register_attack("mi-fgsm")
class MIFGSM(TransferAttack):
    """MI-FGSM (1710.06081): momentum 1.0, ``eps / steps`` steps, CE loss."""


@register_attack("di-fgsm")
class DIFGSM(TransferAttack):
    """M-DI^2-FGSM (1803.06978): MI-FGSM through random resize-and-pad (``momentum=0``:
    DI^2-FGSM).

    With probability ``diversity_prob`` (0.5, Sec. 3.2) per example the input is resized to a
    random side ``r`` in ``[floor(resize_rate * H), H)`` and zero-padded back to ``H x W`` at a
    random offset. The paper enlarges 299 -> [299, 330) and relies on Inception taking any
    size; shrinking and padding keeps the model's input size (as torchattacks does). ``r``
    and the offset are drawn once per step for the batch (as in the paper's code).
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        diversity_prob: float = 0.5,
        resize_rate: float = 0.9,
        **options: Any,
    ) -> None:
        super().__init__(model, eps, **options)
        if not 0 <= diversity_prob <= 1:
            raise ValueError(f"diversity_prob={diversity_prob!r} is not allowed; expected [0, 1]")
        if not 0 < resize_rate < 1:
            raise ValueError(f"resize_rate={resize_rate!r} is not allowed; expected (0, 1)")
        self.diversity_prob, self.resize_rate = diversity_prob, resize_rate

    def transform(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"di-fgsm needs NCHW images, got inputs of shape {tuple(x.shape)}")
        h, w = x.shape[2:]
        low_h, low_w = max(1, int(self.resize_rate * h)), max(1, int(self.resize_rate * w))
        frac = float(torch.rand((), generator=gen))
        rh = low_h + int(frac * (h - low_h))
        rw = low_w + int(frac * (w - low_w))
        top = int(torch.randint(0, h - rh + 1, (), generator=gen))
        left = int(torch.randint(0, w - rw + 1, (), generator=gen))
        small = torch.nn.functional.interpolate(x, size=(rh, rw), mode="nearest")
        padded = torch.nn.functional.pad(small, (left, w - rw - left, top, h - rh - top))
        apply = torch.rand(len(x), generator=gen).to(x.device) < self.diversity_prob
        return torch.where(apply.view(-1, 1, 1, 1), padded, x)


@register_attack("da-pgd")
class DAPGD(TransferAttack):
    """Direction-aggregated PGD: each step averages the normalised gradients at
    ``n_samples`` (8) points uniform in the ``norm`` ball of ``radius`` (default ``eps``)
    around the iterate (clipped to [0, 1]), computed in one batched forward-backward pass.

    Defaults otherwise as PGD (no momentum, step ``2.5 eps / steps``).
    """

    default_momentum = 0.0

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        n_samples: int = 8,
        radius: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(model, eps, **options)
        self.n_samples = check_int("n_samples", n_samples)
        self.radius = self.eps if radius is None else check_eps(radius, "radius")

    def default_step(self, eps: float, steps: int) -> float:
        return 2.5 * eps / steps

    def direction(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        gen: torch.Generator,
    ) -> torch.Tensor:
        k = self.n_samples
        xs = x.repeat(k, *([1] * (x.ndim - 1)))
        xs = random_start(xs, self.radius, self.norm, gen)
        ts = None if target is None else target.repeat(k)
        grads = _l1_normalise(self.objective_grad(xs, y.repeat(k), ts, gen))
        return grads.view(k, *x.shape).mean(0)


def transfer_matrix(
    models: Sequence[nn.Module] | Mapping[str, nn.Module],
    attack: str | Callable[..., Any],
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 1024,
    **attack_options: Any,
) -> tuple[list[str], torch.Tensor]:
    """Success rates of adversarial examples crafted on model ``i`` against model ``j``.

    ``attack``: a registered name, or a factory ``attack(model, **attack_options)`` returning
    a callable ``(x, y) -> AttackResult | x_adv`` (an :class:`Attack` class works).
    ``matrix[i, j]`` = share of the examples that model ``j`` classifies correctly on clean
    input which it misclassifies after the attack made on model ``i`` (NaN if model ``j``
    gets none right). Names are the mapping's keys, else ``"<index>:<class name>"``.
    """
    if isinstance(models, Mapping):
        names, mods = list(models), list(models.values())
    else:
        mods = list(models)
        names = [f"{i}:{type(m).__name__}" for i, m in enumerate(mods)]
    if not mods:
        raise ValueError("transfer_matrix needs at least one model")
    factory = attack if callable(attack) else functools.partial(create, attack)
    adv = []
    for model in mods:
        atk = factory(model, **attack_options)
        res = atk(x, y)
        adv.append(res.x_adv if isinstance(res, AttackResult) else res)
    stacked = torch.cat([x, *adv]).detach()
    matrix = torch.empty(len(mods), len(mods), dtype=torch.float64)
    for j, model in enumerate(mods):
        with frozen(model):
            pred = query(model, stacked, batch_size).argmax(1).view(len(mods) + 1, len(x))
        correct = pred[0] == y
        fooled = (pred[1:] != y) & correct  # (i, N)
        matrix[:, j] = fooled.sum(1).double() / correct.sum().double()
    return names, matrix
