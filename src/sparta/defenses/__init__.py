"""Adversarial training for the training engine: objectives and callbacks.

Importing this package registers the objectives ``pgd-at``, ``trades`` and ``fast`` with
:func:`sparta.train.register_objective`; WOT and robust validation are callbacks.
"""

from sparta.defenses.craft import AdversarialObjective, perturb
from sparta.defenses.fast_at import FastAdversarialTraining
from sparta.defenses.pgd_at import PGDAdversarialTraining
from sparta.defenses.trades import TRADES, kl_per_example
from sparta.defenses.validation import RobustValidation
from sparta.defenses.wot import WOT

__all__ = [
    "AdversarialObjective",
    "TRADES",
    "WOT",
    "FastAdversarialTraining",
    "PGDAdversarialTraining",
    "RobustValidation",
    "kl_per_example",
    "perturb",
]
