"""Neuron stability and stability-based pruning for certification.

A ReLU neuron is **unstable** on an input when its pre-activation bounds over the input's
perturbation ball straddle zero (``l < 0 < u``): the bound methods must relax it, and branch
and bound must split on it. Li et al. (2022, arXiv 2206.07311, "Can pruning improve certified
robustness of neural networks?", Sec. 3-4) show that pruning leaves fewer unstable neurons,
so bounds are tighter and BaB needs fewer splits, and that pruning aimed at unstable neurons
helps most. (Their own stability method adds a neuron-stability regulariser to IMP training;
here, as the project issue asks, neurons are scored directly.)

* :func:`stability_scores`: for every ReLU, per neuron, the fraction of (input, position)
  pairs of a data batch on which it is unstable at ``eps`` (bounds from
  :func:`sparta.certify.preact_bounds`). For a conv feature map a neuron is a channel.
* :func:`count_unstable`: unstable neurons per input, by layer.

Pruning the most unstable neurons composes these scores with ``sparta.sparsity``: it is the
recipe :func:`sparta.experiments.stability.prune_unstable`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sparta.certify.api import METHODS
from sparta.checks import check_eps
from sparta.data import ImageDataset, as_dataset
from sparta.models.utils import device_of


def _inputs(data: ImageDataset | torch.Tensor) -> torch.Tensor:
    x = data if isinstance(data, torch.Tensor) else as_dataset(data).x
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or len(x) == 0:
        raise ValueError("data must be a non-empty ImageDataset or a batch tensor (N, ...)")
    return x


def _check(eps: float, method: str) -> None:
    check_eps(eps)
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not allowed; expected one of {METHODS}")


@torch.no_grad()
def unstable_counts(
    model: nn.Module,
    data: ImageDataset | torch.Tensor,
    eps: float,
    method: str = "ibp",
    norm: str = "linf",
    batch_size: int = 256,
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Per ReLU: how many (input, position) pairs each neuron is unstable on (int64 per
    neuron, i.e. per feature or per channel), and how many pairs each neuron was seen on."""
    from sparta.certify import bounds

    _check(eps, method)
    x = _inputs(data)
    device = device_of(model)
    counts: dict[str, torch.Tensor] = {}
    seen: dict[str, int] = {}
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device)
        # Bounds.unstable: straddling pre-activations, never a grafted (linear) neuron
        for name, straddle in bounds(model, xb, eps, norm=norm, method=method).unstable().items():
            dims = [d for d in range(straddle.dim()) if d != 1]
            c = straddle.sum(dim=dims).cpu()
            counts[name] = counts[name] + c if name in counts else c
            seen[name] = seen.get(name, 0) + straddle.numel() // straddle.shape[1]
    return counts, seen


def stability_scores(
    model: nn.Module,
    data: ImageDataset | torch.Tensor,
    eps: float,
    method: str = "ibp",
    norm: str = "linf",
    batch_size: int = 256,
) -> dict[str, torch.Tensor]:
    """ReLU name -> per-neuron instability in [0, 1]: the fraction of (input, position) pairs
    of ``data`` on which the neuron's pre-activation bounds at ``eps`` straddle zero."""
    counts, seen = unstable_counts(model, data, eps, method, norm, batch_size)
    return {name: c.double() / seen[name] for name, c in counts.items()}


def count_unstable(
    model: nn.Module,
    data: ImageDataset | torch.Tensor,
    eps: float,
    method: str = "ibp",
    norm: str = "linf",
    batch_size: int = 256,
) -> dict[str, Any]:
    """Unstable ReLU neurons (every position of a feature map counts) per input of ``data``:
    ``{"total": mean per input, "by_layer": {relu: mean per input}, "n": inputs}``."""
    counts, _ = unstable_counts(model, data, eps, method, norm, batch_size)
    n = len(_inputs(data))
    by_layer = {name: float(c.sum()) / n for name, c in counts.items()}
    return {"total": sum(by_layer.values()), "by_layer": by_layer, "n": n}


__all__ = ["count_unstable", "stability_scores", "unstable_counts"]
