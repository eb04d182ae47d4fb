"""First-order Taylor importance ``|w * g|`` (Molchanov et al. 2017, 1611.06440, Eq. 7-8).

Unlike SNIP, which scores with the gradient of the loss over all sampled batches, the
absolute value is taken per mini-batch and averaged over the batches (the accumulated
importance of the paper), so it is meant for several batches (4 by default) and for trained
as well as freshly initialised models. With ``batches=1`` it equals SNIP.
"""

from __future__ import annotations

import torch
from torch import nn

from sparta.data import ImageDataset
from sparta.sparsity.criteria import register_criterion
from sparta.sparsity.criteria.common import data_batches, loss_grads, scoring


@register_criterion("taylor", needs_data=True)
def taylor_scores(
    model: nn.Module,
    params: dict[str, nn.Parameter],
    data: ImageDataset | None,
    batches: int = 4,
    batch_size: int = 128,
    seed: int = 0,
    train_mode: bool = False,
) -> dict[str, torch.Tensor]:
    """Mean over ``batches`` seeded batches of ``|w * g_batch|`` (eval mode unless
    ``train_mode``)."""
    assert data is not None
    chosen = data_batches(model, data, batches, batch_size, seed)
    total = [torch.zeros_like(p) for p in params.values()]
    with scoring(model, params, train=train_mode):
        for x, y in chosen:
            grads = loss_grads(model, params, x, y)
            for t, p, g in zip(total, params.values(), grads, strict=True):
                t.add_((p.detach() * g).abs(), alpha=1.0 / len(chosen))
    return dict(zip(params, total, strict=True))
