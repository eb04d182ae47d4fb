"""Unlearning methods by name: retrain, ft, ga, rl, l1-sparse, salun (one file each)."""

from sparta.unlearn.methods import ft, ga, l1_sparse, retrain, rl, salun  # noqa: F401
from sparta.unlearn.methods.base import (
    Method,
    Plan,
    get_method,
    method_names,
    register_method,
    run_method,
)

__all__ = ["Method", "Plan", "get_method", "method_names", "register_method", "run_method"]
