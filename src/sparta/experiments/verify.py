"""Verification with the attack library's PGD as falsifier (a recipe: certify + attacks).

:func:`sparta.certify.verify` takes the falsifier as a callable; here it is PGD with the
margin loss, run on what the bounds leave undecided before branch and bound.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sparta.attacks import create
from sparta.certify.verify import Falsifier, VerifyResult
from sparta.certify.verify import verified_accuracy as certify_verified_accuracy
from sparta.certify.verify import verify as certify_verify


def pgd_falsifier(steps: int = 20) -> Falsifier | None:
    """PGD (margin loss, ``steps`` steps) as a falsifier; None when ``steps`` <= 0."""
    if steps <= 0:
        return None

    def falsify(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str
    ) -> torch.Tensor:
        return create("pgd", model, eps=eps, norm=norm, steps=steps, loss="margin")(x, y).x_adv

    return falsify


def verify(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    method: str = "bab",
    timeout: float = 60.0,
    norm: str = "linf",
    max_branches: int = 100_000,
    pgd_steps: int = 20,
    batch: int = 64,
) -> VerifyResult:
    """:func:`sparta.certify.verify.verify` with ``pgd_steps`` of PGD as the falsifier."""
    return certify_verify(
        model, x, y, eps, method, timeout, norm, max_branches,
        falsifier=pgd_falsifier(pgd_steps), batch=batch,
    )  # fmt: skip


def verified_accuracy(
    model: nn.Module,
    data: Any,
    eps: float,
    method: str = "crown",
    timeout: float = 60.0,
    n: int | None = None,
    norm: str = "linf",
    batch_size: int = 100,
    seed: int = 0,
    pgd_steps: int = 20,
    **options: Any,
) -> dict[str, Any]:
    """:func:`sparta.certify.verify.verified_accuracy` with PGD as the falsifier."""
    return certify_verified_accuracy(
        model, data, eps, method, timeout, n, norm, batch_size, seed,
        falsifier=pgd_falsifier(pgd_steps), **options,
    )  # fmt: skip
