"""Masks as buffers: the convention every layer above the engine relies on.

A dense parameter ``weight`` with a boolean buffer ``weight_mask`` beside it; pruned entries
are kept exactly zero by masking the gradient before the optimizer step and re-masking the
weight after it (:func:`enforce`, :class:`MaskCallback`). No forward hook sits on the hot
path. Buffers travel in ``state_dict``, checkpoints and ``copy.deepcopy``.

This module only reads, attaches and keeps masks; choosing them (criteria, structures,
schedules) is ``sparta.sparsity``. It lives in the engine so that any pillar (unlearning
a pruned model, certifying one) keeps a model's masks without importing ``sparsity``.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from sparta import io
from sparta.train.callbacks import Callback

if TYPE_CHECKING:
    from sparta.train.loop import Trainer

log = logging.getLogger(__name__)

SUFFIX = "_mask"


def _split(name: str) -> tuple[str, str]:
    module, _, param = name.rpartition(".")
    return module, param


def attach(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Set (or replace) the mask buffer of each named parameter and zero what it prunes."""
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        if name not in params:
            raise ValueError(f"no parameter named {name!r} to mask")
        p = params[name]
        if tuple(mask.shape) != tuple(p.shape):
            raise ValueError(
                f"mask for {name} has shape {tuple(mask.shape)}, parameter has {tuple(p.shape)}"
            )
        module_name, pname = _split(name)
        module = model.get_submodule(module_name)
        m = mask.detach().to(device=p.device, dtype=torch.bool).clone()
        bname = pname + SUFFIX
        if bname in module._buffers:
            module._buffers[bname] = m
        else:
            module.register_buffer(bname, m)
    apply_masks(model)


def named_masks(model: nn.Module) -> Iterator[tuple[str, nn.Parameter, torch.Tensor]]:
    """``(parameter name, parameter, mask)`` for every masked parameter."""
    for module_name, module in model.named_modules():
        for bname, buf in module._buffers.items():
            if bname.endswith(SUFFIX) and buf is not None:
                pname = bname[: -len(SUFFIX)]
                p = module._parameters.get(pname)
                if p is not None:
                    full = f"{module_name}.{pname}" if module_name else pname
                    yield full, p, buf


def masks_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameter name -> boolean mask (the live buffers, not copies)."""
    return {name: mask for name, _, mask in named_masks(model)}


def detach_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Remove every mask buffer (weights keep their zeros); returns the removed masks."""
    removed = {}
    for name, _, mask in list(named_masks(model)):
        module_name, pname = _split(name)
        del model.get_submodule(module_name)._buffers[pname + SUFFIX]
        removed[name] = mask
    return removed


def _as_factor(mask: torch.Tensor) -> torch.Tensor:
    """A zero-copy uint8 view of a bool mask: multiplying by it is ~6x faster on CPU than
    by the bool tensor itself (measured on LeNet-300-100's first layer)."""
    return mask.view(torch.uint8) if mask.dtype == torch.bool else mask


class MaskFactors:
    """The masks of one model as float tensors of each parameter's dtype, for the hot path.

    Multiplying a float32 tensor in place by a float32 mask costs a third of multiplying it
    by a uint8 view of the bool mask on CPU when both are in cache (no type promotion: 45
    vs 141 us for LeNet-300-100's first layer), though in a full training step, where the
    pass is memory-bound, the two measured the same (BENCHMARKS.md). One
    ``torch._foreach_mul_`` masks every layer in one call (fused on CUDA). The factors cost
    one float copy of each masked parameter. Every call re-reads the model's masks (a walk
    over its modules: 6 us on LeNet-300-100, 80 us on ResNet-20) and rebuilds the factors
    when a mask or parameter is not the same object, a mask was edited in place (its
    ``_version``) or a parameter was cast or moved, so attached, removed, replaced or
    edited masks and replaced modules are always honoured.
    """

    def __init__(self, model: nn.Module) -> None:
        self._model = weakref.ref(model)
        self._seen: list[tuple[nn.Parameter, torch.Tensor, int]] = []
        self.params: list[nn.Parameter] = []
        self.factors: list[torch.Tensor] = []

    def refresh(self) -> MaskFactors:
        """Rebuild the factors if a mask or parameter changed since the last call."""
        model = self._model()
        found = [] if model is None else [(p, m) for _, p, m in named_masks(model)]
        if len(found) == len(self._seen) and all(
            p is p0 and m is m0 and m._version == v and f.dtype == p.dtype and f.device == p.device
            for (p, m), (p0, m0, v), f in zip(found, self._seen, self.factors, strict=True)
        ):
            return self
        self._seen = [(p, m, m._version) for p, m in found]
        self.params = [p for p, _ in found]
        self.factors = [m.detach().to(p.dtype) for p, m in found]
        return self


_FACTORS: weakref.WeakKeyDictionary[nn.Module, MaskFactors] = weakref.WeakKeyDictionary()


def mask_factors(model: nn.Module) -> MaskFactors:
    """The model's :class:`MaskFactors`, cached per model and refreshed when masks change."""
    cached = _FACTORS.get(model)
    if cached is None:
        cached = _FACTORS[model] = MaskFactors(model)
    return cached.refresh()


@torch.no_grad()
def apply_masks(model: nn.Module) -> None:
    """Zero every pruned entry of every masked parameter (in place)."""
    f = mask_factors(model)
    if f.params:
        torch._foreach_mul_(f.params, f.factors)


@torch.no_grad()
def mask_gradients(model: nn.Module) -> None:
    """Zero the gradients of pruned entries, so momentum never builds up on them."""
    f = mask_factors(model)
    pairs = [(p.grad, m) for p, m in zip(f.params, f.factors, strict=True) if p.grad is not None]
    if pairs:
        grads, factors = zip(*pairs, strict=True)
        torch._foreach_mul_(list(grads), list(factors))


def reset_optimizer_state(
    optimizer: torch.optim.Optimizer | None, param: nn.Parameter, where: torch.Tensor
) -> None:
    """Zero every per-entry optimizer buffer of ``param`` (momentum, Adam moments) at ``where``."""
    state = optimizer.state.get(param) if optimizer is not None else None
    for value in (state or {}).values():
        if isinstance(value, torch.Tensor) and value.shape == param.shape:
            value.masked_fill_(where, 0)


def clear_pruned_state(optimizer: torch.optim.Optimizer | None, model: nn.Module) -> None:
    """Zero the optimizer state of every pruned entry of ``model``."""
    for _, p, mask in named_masks(model):
        reset_optimizer_state(optimizer, p, ~mask)


@torch.no_grad()
def pruned_are_zero(model: nn.Module) -> bool:
    """Whether every pruned entry of every masked parameter is exactly zero."""
    return all(not bool(p.masked_select(~mask).any()) for _, p, mask in named_masks(model))


def enforce(model: nn.Module) -> None:
    """Re-mask weights; call once after each ``optimizer.step()`` in a plain PyTorch loop."""
    apply_masks(model)


# checkpoints: describe which parameters carry masks; on load, create the buffers so that
# a strict load_state_dict fills them
def _describe(model: nn.Module) -> list[str] | None:
    names = [name for name, _, _ in named_masks(model)]
    return names or None


def _restore(model: nn.Module, tensors: dict[str, torch.Tensor], names: list[str]) -> None:
    params = dict(model.named_parameters())
    missing = [n for n in names if n not in params or n + SUFFIX not in tensors]
    if missing:
        raise ValueError(f"checkpoint lists a mask for {missing[0]!r} that it does not hold")
    attach(model, {n: tensors[n + SUFFIX] for n in names})


io.register_extra("masks", _describe, _restore)


class MaskCallback(Callback):
    """Keeps pruned weights exactly zero during training, at almost no cost.

    Gradients of pruned entries are masked after every backward pass, and their optimizer
    state is cleared when training starts. For SGD (momentum, Nesterov, weight decay), Adam,
    AdamW and any optimizer that leaves an entry with zero weight, gradient and state at
    zero, that alone keeps pruned weights exactly zero, so no re-masking is needed after the
    step (it cost LeNet-300-100 5-10% per step). The callback checks this after the first
    step and at every epoch end; should an optimizer move a pruned weight, it re-masks and
    from then on re-masks after every step. Subclasses that change masks during training
    (gradual pruning, DST) call these hooks through ``super()``.
    """

    name = "masks"

    def __init__(self, remask_every_step: bool = False) -> None:
        self.remask_every_step = remask_every_step
        self._checked = False

    def on_fit_start(self, trainer: Trainer) -> None:
        apply_masks(trainer.model)
        clear_pruned_state(trainer.optimizer, trainer.model)
        self._checked = False

    def after_backward(self, trainer: Trainer) -> None:
        mask_gradients(trainer.model)

    def after_step(self, trainer: Trainer) -> None:
        if self.remask_every_step:
            apply_masks(trainer.model)
        elif not self._checked:
            self._checked = True
            self.verify(trainer)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if not self.remask_every_step:
            self.verify(trainer)

    def verify(self, trainer: Trainer) -> None:
        """Re-mask, and re-mask after every step from now on, if a pruned weight moved."""
        if not pruned_are_zero(trainer.model):
            log.warning(
                "%s moved pruned weights despite masked gradients; re-masking after every step",
                type(trainer.optimizer).__name__,
            )
            apply_masks(trainer.model)
            self.remask_every_step = True

    def state_dict(self) -> dict[str, Any]:
        return {"remask_every_step": self.remask_every_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.remask_every_step = bool(state.get("remask_every_step", False))
