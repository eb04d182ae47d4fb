"""``SparsityHandle``: the masked model's one object for training code.

With the engine pass ``handle.callback()`` to the Trainer; in a plain PyTorch loop call
``handle.step()`` once after every ``optimizer.step()``::

    handle = prune(model, "snip", 0.9, data=train)
    for x, y in batches:
        opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
        handle.step()              # pruned weights back to exactly zero
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from sparta.models.count import weight_sparsity
from sparta.sparsity.masks import apply_masks, attach, masks_of, named_masks
from sparta.train.masks import MaskCallback


class SparsityHandle:
    """A model whose masks are buffers; ``masks`` are the live buffers (not copies)."""

    def __init__(self, model: nn.Module, masks: Mapping[str, torch.Tensor] | None = None) -> None:
        if masks is not None:
            attach(model, masks)
        self.model = model

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        """Parameter name -> boolean mask buffer (True = kept)."""
        return masks_of(self.model)

    def callback(self) -> MaskCallback:
        """A Trainer callback (name ``"masks"``) that keeps pruned weights exactly zero."""
        return MaskCallback()

    def step(self) -> None:
        """Re-mask the weights: the one call per optimizer step in a plain loop."""
        apply_masks(self.model)

    def sparsity(self) -> float:
        """Fraction of exactly-zero entries over all masked parameters."""
        total = zeros = 0
        for _, p, _ in named_masks(self.model):
            total += p.numel()
            zeros += p.numel() - int(torch.count_nonzero(p.detach()))
        return zeros / total if total else 0.0

    def weight_sparsity(self) -> float:
        """Fraction of exactly-zero entries over the masked weights of Linear/Conv layers
        (masked biases and normalisation parameters, as channel pruning leaves them, are not
        counted): the weight fraction of a channel-pruned model."""
        return weight_sparsity(self.model, only={name for name, _, _ in named_masks(self.model)})

    def channel_sparsity(self, input_shape: tuple[int, ...] | None = None) -> float:
        """Fraction of the prunable channel groups' channels that the masks remove (what
        ``structure="channel"`` prunes; ``input_shape`` defaults to the model's spec)."""
        from sparta.sparsity.export import channel_fraction

        return channel_fraction(self.model, input_shape)

    def report(self, input_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
        """Per-layer and global counts (see :func:`sparta.sparsity.report.report`)."""
        from sparta.sparsity.report import report

        return report(self.model, input_shape)

    def __repr__(self) -> str:
        return (
            f"SparsityHandle({len(self.masks)} masked parameters, sparsity={self.sparsity():.4f})"
        )
