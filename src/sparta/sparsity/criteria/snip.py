"""SNIP: connection sensitivity ``|w * dL/dw|`` at initialisation (Lee et al. 2019, 1810.02340).

The gradient is that of the mean loss over the sampled batches (Sec. 4: one mini-batch; 128
samples here by default). The paper normalises the scores by their sum, which does not
change their ranking, so it is left out.
"""

from __future__ import annotations

import torch
from torch import nn

from sparta.data import ImageDataset
from sparta.sparsity.criteria import register_criterion
from sparta.sparsity.criteria.common import data_batches, loss_grads, scoring


@register_criterion("snip", needs_data=True)
def snip_scores(
    model: nn.Module,
    params: dict[str, nn.Parameter],
    data: ImageDataset | None,
    batches: int = 1,
    batch_size: int = 128,
    seed: int = 0,
    train_mode: bool = False,
) -> dict[str, torch.Tensor]:
    """``|w * g|`` with ``g`` the gradient of the loss averaged over ``batches`` seeded batches.

    The model runs in eval mode unless ``train_mode`` (batch statistics; the BatchNorm
    buffers are restored afterwards).
    """
    assert data is not None
    chosen = data_batches(model, data, batches, batch_size, seed)
    total = [torch.zeros_like(p) for p in params.values()]
    with scoring(model, params, train=train_mode):
        for x, y in chosen:
            for t, g in zip(total, loss_grads(model, params, x, y), strict=True):
                t.add_(g, alpha=1.0 / len(chosen))
    return {n: (p.detach() * g).abs() for (n, p), g in zip(params.items(), total, strict=True)}
