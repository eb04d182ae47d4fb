"""Masks as buffers: a dense parameter ``weight`` and a boolean buffer ``weight_mask`` beside it.

The buffer convention (attach, read, keep masks; checkpoint support) lives in the engine,
:mod:`sparta.train.masks`, so every pillar can keep a model's masks; it is re-exported here.
This module adds what only pruning needs: which parameters are prunable.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from sparta.train.masks import (  # noqa: F401  (re-exported: the sparsity API)
    SUFFIX,
    _as_factor,
    _split,
    apply_masks,
    attach,
    clear_pruned_state,
    detach_masks,
    enforce,
    mask_gradients,
    masks_of,
    named_masks,
    pruned_are_zero,
    reset_optimizer_state,
)

PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)


def kept_fraction(masks: Mapping[str, torch.Tensor]) -> float:
    """Fraction of the masked entries that are kept (1.0 without masks); the model's
    sparsity over its masked parameters is ``1 - kept_fraction(masks_of(model))``."""
    total = sum(m.numel() for m in masks.values())
    return sum(int(m.sum()) for m in masks.values()) / total if total else 1.0


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
