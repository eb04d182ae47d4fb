"""SynFlow: iterative synaptic flow pruning, data-free (Tanaka et al. 2020, 2006.05467).

Alg. 1: replace every weight by ``|w|`` (the reference code takes ``abs`` of the whole
``state_dict``, so BatchNorm statistics and affine terms too), feed an all-ones input,
let ``R`` be the sum of the outputs and score ``|w * dR/dw|``. Pruning is iterative:
:func:`sparta.sparsity.pruning.prune` runs 100 rounds by default, round ``k`` keeping a
density ``d^(k/n)`` (exponential schedule) with the masks of the previous round applied.

Details: the model runs in eval mode (BatchNorm uses its running statistics, as in the
reference's default ``train_mode=False``), and ``R`` is computed in float64 by default
because the product of many ``|w|`` overflows or underflows float32 in deep networks. The
model itself is never modified: the absolute values live in a separate dictionary that
``torch.func.functional_call`` substitutes for the parameters and buffers.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.func import functional_call

from sparta.data import ImageDataset
from sparta.models.utils import device_of, input_shape_of
from sparta.sparsity.criteria import register_criterion
from sparta.sparsity.criteria.common import scoring

ROUNDS = 100


@register_criterion("synflow", needs_data=False, rounds=ROUNDS)
def synflow_scores(
    model: nn.Module,
    params: dict[str, nn.Parameter],
    data: ImageDataset | None,
    masks: Mapping[str, torch.Tensor] | None = None,
    input_shape: tuple[int, ...] | None = None,
    double: bool = True,
) -> dict[str, torch.Tensor]:
    """``|w * dR/dw|`` on the linearised (``|.|``) network with ``masks`` applied."""
    if input_shape is None and data is not None:
        input_shape = data.input_shape
    shape = input_shape_of(model, input_shape)
    dtype = torch.float64 if double else torch.float32
    masks = masks or {}

    def linear(name: str, t: torch.Tensor) -> torch.Tensor:
        if not t.is_floating_point():
            return t
        out = t.detach().abs().to(dtype)
        return out * masks[name] if name in masks else out

    state = {n: linear(n, t) for n, t in model.named_buffers()}
    state.update({n: linear(n, p) for n, p in model.named_parameters()})
    leaves = [state[n].requires_grad_(True) for n in params]
    ones = torch.ones((1, *shape), dtype=dtype, device=device_of(model))
    with scoring(model, params, train=False):
        out = functional_call(model, state, (ones,))
        grads = torch.autograd.grad(out.sum(), leaves, materialize_grads=True)
    scores = [(w.detach() * g).abs() for w, g in zip(leaves, grads, strict=True)]
    # scale by the largest score (in float64) so float32 scores neither overflow nor flush
    top = max((float(s.max()) for s in scores if s.numel()), default=0.0)
    scale = 1.0 / top if top > 0 else 1.0
    return {n: (s * scale).to(p.dtype) for (n, p), s in zip(params.items(), scores, strict=True)}
