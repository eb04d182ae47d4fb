"""RigL (Evci et al. 2020, 1911.11134): SET with growth where the dense gradient is largest.

As in the reference code (``SparseRigLOptimizer``), the gradient is the dense gradient of
the current batch (autograd gives it for every entry of the zero-filled dense weight; it is
read before the gradients are masked), and the mask update takes the place of that step's
optimizer update.
"""

from __future__ import annotations

import torch
from torch import nn

from sparta.sparsity.dst.base import DynamicSparsity, register_dst


@register_dst("rigl")
class RigL(DynamicSparsity):
    """Rigging the Lottery: grow the inactive connections with the largest ``|dL/dw|``."""

    replaces_step = True

    def grow_score(self, name: str, param: nn.Parameter, step: int, index: int) -> torch.Tensor:
        if param.grad is None:
            raise ValueError(f"RigL needs the gradient of {name}, which has none at step {step}")
        return param.grad.abs()
