"""Layer-wise density allocations that meet a global sparsity: uniform and ERK."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from sparta.sparsity.topk import check_sparsity


def uniform(shapes: Mapping[str, torch.Size], sparsity: float) -> dict[str, float]:
    """Every layer gets density ``1 - sparsity``."""
    check_sparsity(sparsity)
    return {n: 1.0 - sparsity for n in shapes}


def erk(shapes: Mapping[str, torch.Size], sparsity: float, power: float = 1.0) -> dict[str, float]:
    """Erdos-Renyi-Kernel densities (Evci et al. 2020, 1911.11134, Sec. 3 and App. D).

    A layer's density is proportional to ``sum(dims) / prod(dims)`` (kernel dims included;
    for a Linear this is plain Erdos-Renyi), scaled by one factor so that the total kept
    count equals ``(1 - sparsity) * total``; a layer whose density would exceed 1 is kept
    dense and the factor is solved again over the rest, as in the reference code.
    """
    check_sparsity(sparsity)
    sizes = {n: int(torch.Size(s).numel()) for n, s in shapes.items()}
    raw = {n: (sum(s) / sizes[n]) ** power for n, s in shapes.items()}
    budget = (1.0 - sparsity) * sum(sizes.values())
    dense: set[str] = set()
    while True:
        free = [n for n in shapes if n not in dense]
        remaining = budget - sum(sizes[n] for n in dense)
        weight = sum(raw[n] * sizes[n] for n in free)
        eps = remaining / weight if weight > 0 else 0.0
        over = [n for n in free if eps * raw[n] > 1.0]
        if not over:
            break
        dense.add(max(over, key=lambda n: raw[n]))
    return {n: 1.0 if n in dense else eps * raw[n] for n in shapes}


ALLOCATIONS = {"uniform": uniform, "layer": uniform, "erk": erk}


def allocate(kind: str, shapes: Mapping[str, torch.Size], sparsity: float) -> dict[str, float]:
    """Densities per layer for an allocation ``kind`` (``uniform``/``layer`` or ``erk``)."""
    if kind not in ALLOCATIONS:
        raise ValueError(f"allocation {kind!r} is not known; allowed: {', '.join(ALLOCATIONS)}")
    return ALLOCATIONS[kind](shapes, sparsity)
