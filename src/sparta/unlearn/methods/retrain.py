"""Retrain: train a fresh model on the retain set only (exact unlearning, the reference).

Same architecture, a fresh seeded initialisation, and the original training's recipe
(epochs, learning rate, schedule); a pruned model is retrained with its mask, so the sparse
Retrain is the reference of the sparse methods (2304.04934 Sec. 5 compares each sparsity
with Retrain at that sparsity).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from sparta.train import TrainConfig
from sparta.unlearn.methods.base import Plan, register_method
from sparta.unlearn.options import UnlearnOptions
from sparta.unlearn.settings import Setting


def fresh_copy(model: nn.Module, seed: int) -> nn.Module:
    """The same architecture freshly initialised from ``seed``, keeping any masks."""
    from sparta.models import from_spec, spec_of
    from sparta.train.masks import attach, masks_of

    torch.manual_seed(seed)
    try:
        new = from_spec(spec_of(model))
    except ValueError:  # not built by sparta.models: reset every layer that can be
        new = copy.deepcopy(model)
        for mod in new.modules():
            if hasattr(mod, "reset_parameters"):
                mod.reset_parameters()
    masks = masks_of(model)
    if masks:
        attach(new, {n: m.detach().cpu() for n, m in masks.items()})
    return new


@register_method("retrain", summary="train from scratch on the retain set (the reference)")
def prepare(model: nn.Module, setting: Setting, opts: UnlearnOptions, base: TrainConfig) -> Plan:
    """Retrain from scratch on the retain set with the original training's recipe."""
    config = opts.recipe(base, opts.retrain_epochs or base.epochs)
    return Plan(setting.retain, model=fresh_copy(model, opts.seed), config=config)
