"""sparta: sparse and trustworthy neural networks, measured on the same model.

The sub-packages (``sparta.models``, ``sparta.attacks``, ...) are reachable as attributes
after ``import sparta``, imported on first use (as ``torch.nn`` is after ``import torch``).
"""

from __future__ import annotations

import importlib
from typing import Any

from sparta.io import load, save

__version__ = "0.1.0"
SUBPACKAGES = (
    "models",
    "data",
    "train",
    "sparsity",
    "attacks",
    "defenses",
    "certify",
    "unlearn",
    "backdoor",
    "experiments",
    "report",
)
__all__ = ["load", "save", "__version__", *SUBPACKAGES]


def __getattr__(name: str) -> Any:
    """Import a sub-package on first access: ``sparta.attacks`` after ``import sparta``."""
    if name in SUBPACKAGES:
        return importlib.import_module(f"sparta.{name}")
    raise AttributeError(f"module 'sparta' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *SUBPACKAGES})
