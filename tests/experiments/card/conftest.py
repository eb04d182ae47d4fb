"""Tiny cards: digits, LeNet-5, budgets of a fraction of a second per cell."""

from __future__ import annotations

from typing import Any

import pytest

TINY: dict[str, Any] = {
    "dataset": "digits",
    "model": "lenet5",
    "epochs": 2,
    "lr": 0.1,
    "batch_size": 64,
    "sparsities": [0.5],
    "finetune_epochs": 1,
    "gmp_epochs": 1,
    "robust_n": 20,
    "cert_n": 8,
    "smooth_n": 4,
    "smooth_samples": 40,
    "unlearn_subset": 300,
    "unlearn_epochs": 1,
    "backdoor_rounds": 1,
    "backdoor_subset": 200,
    "backdoor_recover_steps": 5,
    "latency_repeats": 2,
}


@pytest.fixture
def tiny() -> dict[str, Any]:
    """A copy of the tiny card's options."""
    return dict(TINY)


def cli_args(opts: dict[str, Any]) -> list[str]:
    """``--flag value`` arguments of ``sparta card`` for ``opts``."""
    out: list[str] = []
    for k, v in opts.items():
        flag = "--" + k.replace("_", "-")
        out += [flag, *map(str, v)] if isinstance(v, list) else [flag, str(v)]
    return out
