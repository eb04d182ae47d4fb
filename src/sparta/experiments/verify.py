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


def verify(*args: Any, pgd_steps: int = 20, **kwargs: Any) -> VerifyResult:
    """:func:`sparta.certify.verify.verify` (same arguments) with ``pgd_steps`` of PGD as the
    falsifier (0: none)."""
    return certify_verify(*args, falsifier=pgd_falsifier(pgd_steps), **kwargs)


def verified_accuracy(*args: Any, pgd_steps: int = 20, **kwargs: Any) -> dict[str, Any]:
    """:func:`sparta.certify.verify.verified_accuracy` (same arguments) with ``pgd_steps`` of
    PGD as the falsifier (0: none)."""
    return certify_verified_accuracy(*args, falsifier=pgd_falsifier(pgd_steps), **kwargs)
