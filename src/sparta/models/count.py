"""Counting parameters, non-zero weights and multiply-accumulates (MACs)."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

import torch
from torch import nn

from sparta.models.utils import device_of, dtype_of, eval_mode

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter entries (shared parameters counted once); with
    ``trainable_only`` only those with ``requires_grad``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _is_weight(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, *_CONV, *_CONV_T))


def count_nonzero(model: nn.Module, weights_only: bool = False) -> int:
    """Number of non-zero parameter entries.

    With ``weights_only`` only the ``weight`` tensors of linear and convolution layers count
    (the usual denominator of a sparsity figure); otherwise every parameter does.
    """
    if weights_only:
        tensors = [m.weight for m in model.modules() if _is_weight(m)]
    else:
        tensors = list(model.parameters())
    return sum(int(torch.count_nonzero(t.detach())) for t in tensors)


def weight_sparsity(model: nn.Module, only: Collection[str] | None = None) -> float:
    """Fraction of exactly-zero entries among the ``weight`` tensors of the linear and
    convolution layers (the weights pruning acts on by default); with ``only``, among those
    whose parameter name (``"fc.weight"``) is in it, e.g. the masked ones. 0.0 when none."""
    tensors = [
        m.weight
        for n, m in model.named_modules()
        if _is_weight(m) and (only is None or (f"{n}.weight" if n else "weight") in only)
    ]
    total = sum(t.numel() for t in tensors)
    zeros = total - sum(int(torch.count_nonzero(t.detach())) for t in tensors)
    return zeros / total if total else 0.0


def _module_macs(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> int:
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    if isinstance(module, _CONV):
        k = math.prod(module.kernel_size)
        return output.numel() * (module.in_channels // module.groups) * k
    if isinstance(module, _CONV_T):
        k = math.prod(module.kernel_size)
        return inputs[0].numel() * (module.out_channels // module.groups) * k
    return 0


def count_flops(
    model: nn.Module, input_shape: Sequence[int], dtype: torch.dtype | None = None
) -> int:
    """Multiply-accumulates (MACs, not 2x FLOPs) of one forward pass on zeros of
    ``input_shape``: ``(C, H, W)`` for one sample, or ``(N, C, H, W)`` for a batch of ``N``.

    Counts ``nn.Linear`` and convolution layers (biases, activations, norms and pooling are
    not counted) plus any module with an ``extra_macs(input) -> int`` method (the ViT's
    attention matmuls). Temporary forward hooks are removed and the model's train/eval mode
    restored afterwards; the pass runs in eval mode under ``torch.no_grad``.
    """
    shape = tuple(int(v) for v in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) or (N, C, H, W), got {input_shape}")
    device, dtype = device_of(model), dtype or dtype_of(model)
    total = 0

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        nonlocal total
        total += _module_macs(module, inputs, output)
        extra = getattr(module, "extra_macs", None)
        if callable(extra):
            total += int(extra(*inputs))

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with eval_mode(model), torch.no_grad():
            model(torch.zeros(shape, device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
    return int(total)
