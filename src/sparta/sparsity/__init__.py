"""Sparsity: masks as buffers, scores to masks, layer-wise allocations."""

from sparta.sparsity.allocation import allocate, erk, uniform
from sparta.sparsity.masks import (
    apply_masks,
    attach,
    detach_masks,
    enforce,
    mask_gradients,
    masks_of,
    named_masks,
    prunable_parameters,
)
from sparta.sparsity.topk import global_masks, keep_top, layer_masks

__all__ = [
    "allocate",
    "apply_masks",
    "attach",
    "detach_masks",
    "enforce",
    "erk",
    "global_masks",
    "keep_top",
    "layer_masks",
    "mask_gradients",
    "masks_of",
    "named_masks",
    "prunable_parameters",
    "uniform",
]
