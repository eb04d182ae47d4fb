"""Sparsity over time: the cubic schedule of gradual pruning (Zhu & Gupta, 1710.01878) as a
training callback, the cosine decay of DST drop fractions, and helpers that keep an
optimizer's state harmless when masks change.

One-shot pruning (at init, or of a trained model before fine-tuning) is a single call to
``sparta.sparsity.pruning.prune`` followed by training with its handle's callback. Gradual
pruning calls the same selection (:func:`sparta.sparsity.pruning.select_masks`) at every
pruning step, so any criterion, structure and distribution work with it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from sparta.data import ImageDataset
from sparta.sparsity.allocation import DISTRIBUTIONS, check_distribution
from sparta.sparsity.handle import MaskCallback
from sparta.sparsity.masks import (
    apply_masks,
    attach,
    kept_fraction,
    masks_of,
    prunable_parameters,
    reset_optimizer_state,
)
from sparta.sparsity.pruning import select_masks
from sparta.sparsity.structures import parse_structure
from sparta.sparsity.topk import check_sparsity

if TYPE_CHECKING:
    from sparta.train.loop import Trainer

__all__ = [
    "DISTRIBUTIONS",
    "GradualPruning",
    "app_sparsities",
    "cosine_decay",
    "cubic_sparsity",
    "current_sparsity",
]


def cubic_sparsity(step: int, s_i: float, s_f: float, t0: int, n: int, dt: int) -> float:
    """Zhu & Gupta eq. 1: ``s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3``.

    ``s_i`` before ``t0``, ``s_f`` from ``t0 + n dt`` on.
    """
    if n < 1 or dt < 1:
        raise ValueError(f"n={n}, dt={dt} are not allowed; expected integers >= 1")
    if step <= t0:
        return float(s_i)
    if step >= t0 + n * dt:
        return float(s_f)
    return s_f + (s_i - s_f) * (1.0 - (step - t0) / (n * dt)) ** 3


def cosine_decay(step: int, value: float, end_step: int) -> float:
    """``value / 2 (1 + cos(pi t / T_end))`` for ``t <= T_end``, then 0 (RigL's drop fraction)."""
    if end_step <= 0 or step > end_step:
        return 0.0
    return 0.5 * value * (1.0 + math.cos(math.pi * step / end_step))


def current_sparsity(model: nn.Module) -> float:
    """Fraction of masked-out entries over every masked parameter (0.0 without masks)."""
    return 1.0 - kept_fraction(masks_of(model))


@torch.no_grad()
def ensure_masks(model: nn.Module, names: Iterable[str]) -> None:
    """Attach an all-ones mask to each named parameter that has none yet."""
    params, existing = dict(model.named_parameters()), masks_of(model)
    missing = {n: torch.ones_like(params[n], dtype=torch.bool) for n in names if n not in existing}
    if missing:
        attach(model, missing)


class GradualPruning(MaskCallback):
    """Gradual pruning on the cubic schedule, as a training callback (GMP by default).

    Every ``interval`` steps from ``start`` to ``end`` (fractions of training) the masked
    parameters are pruned to ``cubic_sparsity`` of that step by one call of
    :func:`sparta.sparsity.pruning.select_masks`: criterion ``method`` (default magnitude;
    ``data`` feeds data-dependent ones), ``structure`` (unstructured, ``block:b`` or
    ``channel``, where the sparsity is the fraction of channels) and ``distribution``
    (``global``, ``uniform``/``layer`` or ``erk``). Pruned entries never come back; their
    optimizer state is zeroed. Between updates gradients are masked after backward.
    """

    name = "gmp"

    def __init__(
        self,
        model: nn.Module,
        sparsity: float,
        *,
        initial_sparsity: float = 0.0,
        start: float = 0.1,
        end: float = 0.6,
        interval: int = 100,
        distribution: str = "global",
        method: str = "magnitude",
        structure: str = "unstructured",
        data: ImageDataset | None = None,
        include: str | Iterable[str] | None = None,
        exclude: Iterable[str] = (),
        **criterion_options: Any,
    ) -> None:
        check_sparsity(sparsity)
        check_sparsity(initial_sparsity)
        if initial_sparsity > sparsity:
            raise ValueError(
                f"initial_sparsity={initial_sparsity} is not allowed; expected <= "
                f"sparsity={sparsity}"
            )
        if not 0.0 <= start < end <= 1.0:
            raise ValueError(
                f"start={start}, end={end} are not allowed; expected 0 <= start < end <= 1"
            )
        if interval < 1:
            raise ValueError(f"interval={interval} is not allowed; expected an integer >= 1")
        self.structure = parse_structure(structure)
        if self.structure.density is not None:
            raise ValueError(
                f"structure={structure!r} fixes the sparsity; it has no gradual schedule "
                "(prune it once with sparta.sparsity.prune)"
            )
        self.distribution = check_distribution(distribution)
        self.s_i, self.s_f = float(initial_sparsity), float(sparsity)
        self.start, self.end, self.interval = start, end, interval
        self.method, self.data, self.criterion_options = method, data, criterion_options
        super().__init__()
        if self.structure.kind == "channel":
            from sparta.sparsity.channels import masks_for
            from sparta.sparsity.groups import channel_groups

            groups = channel_groups(model)
            everything = [torch.ones(g.size, dtype=torch.bool) for g in groups]
            self.names = list(masks_for(model, groups, everything))
            self.params = None
        else:
            self.params = prunable_parameters(model, include, exclude)
            self.names = list(self.params)
        ensure_masks(model, self.names)
        self.t0, self.n, self.dt = 0, 1, interval
        self.target = 0.0

    def plan(self, total_steps: int) -> tuple[int, int, int]:
        """``(t0, n, dt)`` of a run of ``total_steps``: pruning ends by ``end`` of training."""
        t0 = round(self.start * total_steps)
        span = max(round(self.end * total_steps) - t0, 1)
        dt = min(self.interval, span)
        return t0, span // dt, dt

    def on_fit_start(self, trainer: Trainer) -> None:
        self.t0, self.n, self.dt = self.plan(trainer.total_steps)
        super().on_fit_start(trainer)

    def after_step(self, trainer: Trainer) -> None:
        t = trainer.step
        if self.t0 <= t <= self.t0 + self.n * self.dt and (t - self.t0) % self.dt == 0:
            self.target = cubic_sparsity(t, self.s_i, self.s_f, self.t0, self.n, self.dt)
            self._prune(trainer.model, self.target, trainer.optimizer)
        super().after_step(trainer)

    def _prune(
        self, model: nn.Module, sparsity: float, optimizer: torch.optim.Optimizer | None = None
    ) -> None:
        """Shrink the masks to ``sparsity`` (one selection step; pruned entries stay out)."""
        params = dict(model.named_parameters())
        if self.params is not None:  # the live parameters (the model may have moved)
            self.params = {n: params[n] for n in self.names}
        new = select_masks(
            model,
            sparsity,
            self.method,
            self.structure,
            self.distribution,
            self.data,
            params=self.params,
            **self.criterion_options,
        )
        masks = masks_of(model)
        with torch.no_grad():
            for n in self.names:
                keep = new[n].to(masks[n].device) if n in new else masks[n]
                reset_optimizer_state(optimizer, params[n], masks[n] & ~keep)
                masks[n].copy_(keep)
        apply_masks(model)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        super().on_epoch_end(trainer, metrics)
        metrics["sparsity"] = current_sparsity(trainer.model)
        metrics["gmp_target"] = self.target
        if self.structure.kind == "channel":
            from sparta.sparsity.export import channel_fraction

            metrics["channel_sparsity"] = channel_fraction(trainer.model)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "target": self.target}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.target = float(state.get("target", 0.0))


def app_sparsities(k: int, target: float, base: float = 0.8) -> list[float]:
    """APP's sparsity at each of ``k`` mega-batches, reaching ``target`` at the last one.

    As in the reference code of APP (2204.01640; landskape-ai/Progressive-Pruning,
    ``main_anytime_train.py``), the density at mega-batch ``i`` (0-based) is ``base ** e_i``
    with exponents ``e_i`` spaced linearly from 1 (20% sparsity, one IMP-style step of 0.8) to
    ``tau = log(1 - target) / log(base)``, so the density shrinks geometrically from 0.8 to
    ``1 - target`` (a target below ``1 - base`` holds from the first mega-batch: the schedule
    never decreases); with ``k = 1`` the one mega-batch is pruned to ``target``. The last
    value is exactly ``target``.
    """
    check_sparsity(target)
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r} mega-batches is not allowed; expected an integer >= 1")
    if not 0.0 < base < 1.0:
        raise ValueError(f"base={base!r} is not allowed; expected a number in (0, 1)")
    if target == 0.0:
        return [0.0] * k
    tau = math.log(1.0 - target) / math.log(base)
    if k == 1:
        return [float(target)]
    first = min(1.0, tau)  # a target below 1 - base is kept from the start (never un-prune)
    out = [1.0 - base ** (first + (tau - first) * i / (k - 1)) for i in range(k)]
    out[-1] = float(target)  # exactly, not up to rounding
    return out
