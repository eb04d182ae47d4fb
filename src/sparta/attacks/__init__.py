"""Adversarial attacks in pixel space [0, 1], by name from one registry, and their evaluation.

White-box: fgsm, pgd, apgd-ce, apgd-t, fab-t. Black-box (score-based, query-counted): square,
zo-rge, zo-cge. Transfer: mi-fgsm, di-fgsm, da-pgd, and ``transfer_matrix``.
"""

from sparta.attacks import apgd, fab, square, transfer, whitebox, zo  # noqa: F401  (register)
from sparta.attacks.base import (
    Attack,
    AttackResult,
    create,
    names,
    project,
    register_attack,
)
from sparta.attacks.evaluate import (
    SUITES,
    RobustReport,
    evaluate,
    resolve_attacks,
    robust_curve,
)
from sparta.attacks.transfer import transfer_matrix
from sparta.attacks.zo import cge, rge

__all__ = [
    "SUITES",
    "Attack",
    "AttackResult",
    "RobustReport",
    "cge",
    "create",
    "evaluate",
    "names",
    "project",
    "register_attack",
    "resolve_attacks",
    "rge",
    "robust_curve",
    "transfer_matrix",
]
