"""Adversarial attacks in pixel space [0, 1], by name from one registry."""

from sparta.attacks.base import (
    Attack,
    AttackResult,
    create,
    names,
    project,
    register_attack,
)

__all__ = ["Attack", "AttackResult", "create", "names", "project", "register_attack"]
