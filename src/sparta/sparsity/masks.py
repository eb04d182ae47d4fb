"""Masks as buffers: a dense parameter ``weight`` and a boolean buffer ``weight_mask`` beside it.

No forward hook sits on the hot path: pruned entries are kept exactly zero by masking
the gradient before the optimizer step and re-masking the weight after it
(:func:`enforce`). Buffers travel in ``state_dict``, checkpoints and ``copy.deepcopy``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator, Mapping

import torch
from torch import nn

from sparta import io

SUFFIX = "_mask"
PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)


def _split(name: str) -> tuple[str, str]:
    module, _, param = name.rpartition(".")
    return module, param


def prunable_parameters(
    model: nn.Module, include: str | Iterable[str] | None = None, exclude: Iterable[str] = ()
) -> dict[str, nn.Parameter]:
    """The parameters to prune, by name.

    Default: the ``weight`` of every Linear, Conv1d and Conv2d. ``include`` is a glob (or
    several) over parameter names that selects any parameters instead (e.g. ``"*.bias"``,
    ``"features.*.weight"``); ``exclude`` removes matches. An empty result is an error.
    """
    if include is None:
        chosen = {
            f"{m}.weight" if m else "weight": mod.weight
            for m, mod in model.named_modules()
            if isinstance(mod, PRUNABLE_TYPES) and isinstance(mod.weight, nn.Parameter)
        }
    else:
        patterns = [include] if isinstance(include, str) else list(include)
        named = dict(model.named_parameters())
        chosen = {
            n: p for n, p in named.items() if any(fnmatch.fnmatch(n, pat) for pat in patterns)
        }
        if not chosen:
            raise ValueError(
                f"layer pattern {patterns} matches no parameter; names look like "
                f"{', '.join(list(named)[:4])}, ..."
            )
    chosen = {n: p for n, p in chosen.items() if not any(fnmatch.fnmatch(n, e) for e in exclude)}
    if not chosen:
        raise ValueError(
            f"{type(model).__name__} has nothing prunable (no Linear/Conv weights "
            "left after include/exclude)"
        )
    return chosen


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


@torch.no_grad()
def apply_masks(model: nn.Module) -> None:
    """Zero every pruned entry of every masked parameter (in place)."""
    for _, p, mask in named_masks(model):
        p.mul_(_as_factor(mask))


@torch.no_grad()
def mask_gradients(model: nn.Module) -> None:
    """Zero the gradients of pruned entries, so momentum never builds up on them."""
    for _, p, mask in named_masks(model):
        if p.grad is not None:
            p.grad.mul_(_as_factor(mask))


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
