"""GraSP: gradient signal preservation (Wang, Zhang & Grosse 2020, 2002.07376).

Sec. 4 (Eq. 8, Algorithm 1) scores each weight by ``S(-w) = -w * (H g)`` (``H`` the
Hessian and ``g`` the gradient of the loss) and *removes* the fraction ``p`` of weights with
the **largest** scores: removing them reduces the gradient norm (gradient flow) least or even
increases it. The reference code (alecwangcq/GraSP, ``pruner/GraSP.py``) does the same:
``keep = score <= the p-quantile threshold from topk(scores)``. sparta keeps the *highest*
score, so the returned score is ``+w * (H g)`` (= ``-S``): keeping the top ``1 - p`` of it
removes exactly the top ``p`` of ``S``.

As in the reference, the logits are divided by a temperature ``T = 200``, ``g`` is the
(detached) gradient summed over the sampled batches, and ``H g`` is the gradient of
``z = g . grad L`` computed by double back-propagation, again summed over the batches.
"""

from __future__ import annotations

import torch
from torch import nn

from sparta.data import ImageDataset
from sparta.sparsity.criteria import register_criterion
from sparta.sparsity.criteria.common import data_batches, loss_grads, scoring


@register_criterion("grasp", needs_data=True)
def grasp_scores(
    model: nn.Module,
    params: dict[str, nn.Parameter],
    data: ImageDataset | None,
    batches: int = 2,
    batch_size: int = 128,
    seed: int = 0,
    temperature: float = 200.0,
    train_mode: bool = False,
) -> dict[str, torch.Tensor]:
    """``w * (H g)`` (higher = keep) over ``batches`` seeded batches (2 x 128, close to the
    reference's 250 samples); eval mode unless ``train_mode``."""
    assert data is not None
    chosen = data_batches(model, data, batches, batch_size, seed)
    weights = list(params.values())
    g = [torch.zeros_like(p) for p in weights]
    hg = [torch.zeros_like(p) for p in weights]
    with scoring(model, params, train=train_mode):
        for x, y in chosen:
            for acc, gi in zip(g, loss_grads(model, params, x, y, temperature), strict=True):
                acc.add_(gi)
        for x, y in chosen:
            grads = loss_grads(model, params, x, y, temperature, create_graph=True)
            z = sum((gi * fi).sum() for gi, fi in zip(g, grads, strict=True))
            for acc, h in zip(
                hg, torch.autograd.grad(z, weights, materialize_grads=True), strict=True
            ):
                acc.add_(h)
    return {n: p.detach() * h for (n, p), h in zip(params.items(), hg, strict=True)}
