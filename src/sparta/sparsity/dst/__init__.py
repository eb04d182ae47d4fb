"""Dynamic sparse training callbacks by name: ``set`` and ``rigl``."""

from __future__ import annotations

from typing import Any

from torch import nn

from sparta.sparsity.dst.base import DynamicSparsity, random_masks, scale_by_density
from sparta.sparsity.dst.rigl import RigL
from sparta.sparsity.dst.set import SET

METHODS: dict[str, type[DynamicSparsity]] = {"set": SET, "rigl": RigL}


def create_dst(method: str, model: nn.Module, sparsity: float, **options: Any) -> DynamicSparsity:
    """The DST callback ``method`` (``set`` or ``rigl``) on ``model`` at ``sparsity``."""
    if method not in METHODS:
        raise ValueError(f"dst={method!r} is not allowed; expected one of {tuple(METHODS)}")
    return METHODS[method](model, sparsity, **options)


__all__ = [
    "METHODS",
    "SET",
    "DynamicSparsity",
    "RigL",
    "create_dst",
    "random_masks",
    "scale_by_density",
]
