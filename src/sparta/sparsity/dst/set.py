"""SET (Mocanu et al. 2018, 1707.04780): drop the smallest weights, regrow at random."""

from __future__ import annotations

from sparta.sparsity.dst.base import DynamicSparsity, register_dst


@register_dst("set")
class SET(DynamicSparsity):
    """Sparse Evolutionary Training: the base class's random growth, named ``set``."""

    name = "dst"
