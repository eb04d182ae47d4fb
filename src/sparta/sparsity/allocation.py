"""The distribution axis: how a sparsity target is spread over layers.

One vocabulary for every caller (one-shot, gradual, iterative and dynamic sparsity):
``global`` (one ranking over all layers), ``uniform`` (every layer at the same sparsity;
``layer`` is accepted as an alias) and ``erk`` (Erdos-Renyi-Kernel densities). ``uniform``
and ``erk`` are layer-wise density allocations (:func:`allocate`).
"""

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


ALLOCATIONS = {"uniform": uniform, "erk": erk}
DISTRIBUTIONS = ("global", *ALLOCATIONS)
ALIASES = {"layer": "uniform"}


def check_distribution(
    name: str, allowed: tuple[str, ...] = DISTRIBUTIONS, what: str = "distribution"
) -> str:
    """The canonical name of distribution ``name`` (``layer`` -> ``uniform``); a ValueError
    naming the value (as option ``what``) and the ``allowed`` ones otherwise."""
    canonical = ALIASES.get(str(name).strip().lower(), str(name).strip().lower())
    if canonical not in allowed:
        raise ValueError(
            f"{what}={name!r} is not allowed; expected one of {', '.join(allowed)}"
            + (" (or 'layer', an alias of 'uniform')" if "uniform" in allowed else "")
        )
    return canonical


def allocate(kind: str, shapes: Mapping[str, torch.Size], sparsity: float) -> dict[str, float]:
    """Densities per layer for an allocation ``kind`` (``uniform``/``layer`` or ``erk``)."""
    return ALLOCATIONS[check_distribution(kind, tuple(ALLOCATIONS))](shapes, sparsity)
