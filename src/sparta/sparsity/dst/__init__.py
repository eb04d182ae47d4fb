"""Dynamic sparse training callbacks by name (``set``, ``rigl``, ``chase``; one file each,
registered with :func:`register_dst`)."""

from __future__ import annotations

from typing import Any

from torch import nn

from sparta.sparsity.dst.base import (
    DST,
    DynamicSparsity,
    random_masks,
    register_dst,
    scale_by_density,
)
from sparta.sparsity.dst.chase import Chase
from sparta.sparsity.dst.rigl import RigL
from sparta.sparsity.dst.set import SET

METHODS = DST  # the old name: ``name in METHODS`` and ``METHODS[name]`` still work


def create_dst(method: str, model: nn.Module, sparsity: float, **options: Any) -> DynamicSparsity:
    """The DST callback ``method`` (see ``DST.names()``) on ``model`` at ``sparsity``."""
    return DST[method](model, sparsity, **options)


__all__ = [
    "DST",
    "Chase",
    "METHODS",
    "SET",
    "DynamicSparsity",
    "RigL",
    "create_dst",
    "random_masks",
    "register_dst",
    "scale_by_density",
]
