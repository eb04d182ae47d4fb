"""Dynamic sparse training: a constant number of non-zeros per layer, a changing topology.

:class:`DynamicSparsity` is SET (Mocanu et al., 1707.04780); a method that grows by another
score overrides :meth:`DynamicSparsity.grow_score` (RigL: :mod:`sparta.sparsity.dst.rigl`).

Every ``update_interval`` steps ``t <= T_end = stop_fraction * total_steps``, each masked
layer with ``n`` active weights drops the ``k = floor(n z_t)`` active weights of smallest
magnitude and grows ``k`` connections with the highest grow score among those not kept,
with ``z_t = z / 2 (1 + cos(pi t / T_end))``. As in the reference code (google-research/rigl,
``SparseSETOptimizer._get_update_op``) a connection dropped and grown in the same update keeps
its weight; newly grown connections start at 0 with zeroed optimizer state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from sparta.registry import Registry
from sparta.sparsity.allocation import ALLOCATIONS, allocate, check_distribution
from sparta.sparsity.handle import MaskCallback
from sparta.sparsity.masks import (
    attach,
    masks_of,
    prunable_parameters,
    reset_optimizer_state,
)
from sparta.sparsity.pruning import select_masks
from sparta.sparsity.schedules import cosine_decay, current_sparsity
from sparta.sparsity.topk import check_sparsity, keep_top, n_keep

if TYPE_CHECKING:
    from sparta.train.loop import Trainer


def random_masks(
    params: dict[str, nn.Parameter], densities: dict[str, float], generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """A uniformly random mask per parameter keeping exactly ``n_keep(numel, density)``."""
    masks = {}
    for name, p in params.items():
        keep = torch.randperm(p.numel(), generator=generator)[: n_keep(p.numel(), densities[name])]
        mask = torch.zeros(p.numel(), dtype=torch.bool)
        mask[keep] = True
        masks[name] = mask.view(p.shape)
    return masks


@torch.no_grad()
def scale_by_density(model: nn.Module, names: Iterable[str] | None = None) -> None:
    """Multiply each masked weight by ``1 / sqrt(density)`` of its mask (sparsity-aware init).

    Keeps each unit's input variance at that of the dense init, as ``layer_scaled_init`` in
    the RigL code (rigl_tf2/init_utils.py; Evci et al. 2022, 2010.03533): without it a random
    90%-sparse LeNet-5 with PyTorch's default init does not start learning for epochs.
    """
    params, masks = dict(model.named_parameters()), masks_of(model)
    for name in masks if names is None else names:
        density = float(masks[name].float().mean())
        if density > 0:
            params[name].mul_(density**-0.5)


def check_fraction(name: str, value: float, low_open: bool, high_open: bool) -> None:
    """Raise ValueError unless ``value`` lies in the interval with those open ends."""
    ok = (low_open and value > 0 or not low_open and value >= 0) and (
        high_open and value < 1 or not high_open and value <= 1
    )
    if not ok:
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise ValueError(f"{name}={value!r} is not allowed; expected a number in {interval}")


#: every dynamic sparse training method (a :class:`DynamicSparsity` class) by name
DST: Registry[type[DynamicSparsity]] = Registry(
    "dst", populate="sparta.sparsity.dst", label="DST method"
)


def register_dst(name: str, aliases: tuple[str, ...] = ()) -> Callable[[type], type]:
    """Class decorator registering a :class:`DynamicSparsity` subclass as DST method ``name``."""
    return DST.register(name, aliases=aliases)


class DynamicSparsity(MaskCallback):
    """SET: drop the smallest weights, regrow as many at random; a training callback.

    Masks already attached to every chosen parameter are kept (e.g. from a one-shot
    criterion); otherwise random masks at the ``distribution``'s layer densities (``erk`` or
    ``uniform``) are drawn from a generator seeded with ``seed``, and with ``scale_init`` the
    surviving initial weights are scaled by ``1 / sqrt(density)`` (:func:`scale_by_density`).
    Between updates gradients are masked after backward and weights re-masked after each
    optimizer step.
    """

    name = "dst"
    #: the mask update replaces the optimizer update of its step (RigL's reference code)
    replaces_step = False

    def __init__(
        self,
        model: nn.Module,
        sparsity: float,
        *,
        distribution: str = "erk",
        update_interval: int = 100,
        drop_fraction: float = 0.3,
        stop_fraction: float = 0.75,
        seed: int = 0,
        scale_init: bool = True,
        include: str | Iterable[str] | None = None,
        exclude: Iterable[str] = (),
    ) -> None:
        check_sparsity(sparsity)
        check_fraction("drop_fraction", drop_fraction, low_open=True, high_open=True)
        check_fraction("stop_fraction", stop_fraction, low_open=False, high_open=False)
        if update_interval < 1:
            raise ValueError(
                f"update_interval={update_interval!r} is not allowed; expected an integer >= 1"
            )
        distribution = check_distribution(distribution, tuple(ALLOCATIONS))
        self.sparsity, self.distribution = float(sparsity), distribution
        self.interval, self.drop_fraction = update_interval, drop_fraction
        self.stop_fraction, self.seed = stop_fraction, seed
        params = prunable_parameters(model, include, exclude)
        super().__init__()
        self.names = list(params)
        existing = masks_of(model)
        if not all(n in existing for n in self.names):
            shapes = {n: p.shape for n, p in params.items()}
            densities = allocate(distribution, shapes, sparsity)
            attach(model, random_masks(params, densities, torch.Generator().manual_seed(seed)))
            if scale_init:
                scale_by_density(model, self.names)
        self.end_step = 0
        self.updates, self.last_drop_fraction = 0, 0.0
        #: extra updates: 1-based step -> drop fraction, also after ``end_step`` (set by
        #: :class:`~sparta.sparsity.dst.sup_tickets.SupTickets` at each cycle's start)
        self.explore: dict[int, float] = {}

    # ------------------------------------------------------------------ schedule
    def is_update(self, step: int) -> bool:
        """Whether the ``step``-th optimizer step (1-based) updates the topology."""
        if step in self.explore:
            return True
        return 0 < step <= self.end_step and step % self.interval == 0

    def on_fit_start(self, trainer: Trainer) -> None:
        self.end_step = int(self.stop_fraction * trainer.total_steps)
        super().on_fit_start(trainer)

    def after_backward(self, trainer: Trainer) -> None:
        step = trainer.step + 1
        if not (self.replaces_step and self.is_update(step)):
            super().after_backward(trainer)
            return
        self.update(trainer.model, step, trainer.optimizer)  # reads the dense gradients
        for p in trainer.model.parameters():  # skip this step's optimizer update
            if p.grad is not None:
                if trainer.config.amp:  # GradScaler.step needs gradients to check
                    p.grad.zero_()
                else:
                    p.grad = None

    def after_step(self, trainer: Trainer) -> None:
        super().after_step(trainer)
        if not self.replaces_step and self.is_update(trainer.step):
            self.update(trainer.model, trainer.step, trainer.optimizer)

    # ------------------------------------------------------------------ the update
    def grow_score(self, name: str, param: nn.Parameter, step: int, index: int) -> torch.Tensor:
        """Where to grow (higher first): uniform noise from a generator seeded by the step."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 1009 + index)
        return torch.rand(param.shape, generator=g).to(param.device)

    @torch.no_grad()
    def update(
        self, model: nn.Module, step: int, optimizer: torch.optim.Optimizer | None = None
    ) -> None:
        """Drop and regrow ``floor(nnz z_t)`` connections in every masked layer (``z_t`` is
        ``explore[step]`` at an extra update)."""
        fraction = self.explore.get(step, cosine_decay(step, self.drop_fraction, self.end_step))
        params, masks = dict(model.named_parameters()), masks_of(model)
        drops = {n: int(int(masks[n].sum()) * fraction) for n in self.names}
        if any(drops.values()):  # drop by magnitude: the pruner's selection, per layer
            densities = {n: (int(masks[n].sum()) - drops[n]) / masks[n].numel() for n in drops}
            survivors = {n: params[n] for n in self.names}
            kept_all = select_masks(
                model, 0.0, "magnitude", "unstructured", densities, params=survivors
            )
        for index, name in enumerate(self.names):
            p, mask = params[name], masks[name]
            k = drops[name]
            if k == 0:
                continue
            kept = kept_all[name].to(mask.device)
            score = self.grow_score(name, p, step, index).masked_fill(kept, -float("inf"))
            new = kept | keep_top(score, k)
            reset_optimizer_state(optimizer, p, new ^ mask)
            p.masked_fill_(new & ~mask, 0.0)  # grown connections start at zero
            mask.copy_(new)
            p.mul_(mask)
        self.updates += 1
        self.last_drop_fraction = fraction

    # ------------------------------------------------------------------ logging and resume
    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        super().on_epoch_end(trainer, metrics)
        metrics["sparsity"] = current_sparsity(trainer.model)
        metrics["dst_updates"] = self.updates
        metrics["dst_drop_fraction"] = self.last_drop_fraction

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "updates": self.updates,
            "last_drop_fraction": self.last_drop_fraction,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.updates = int(state["updates"])
        self.last_drop_fraction = float(state["last_drop_fraction"])
