"""Adversarial training for the training engine: objectives and callbacks.

Importing this package registers the objectives ``pgd-at``, ``trades`` and ``fast`` with
:func:`sparta.train.register_objective`; WOT and robust validation are callbacks.
"""

from sparta.defenses.craft import AdversarialObjective, perturb
from sparta.defenses.denoise import (
    DenoiserObjective,
    DenoiserValidation,
    freeze_classifier,
    mse_pretrain,
    noisy_accuracy,
    prepare,
)
from sparta.defenses.fast_at import FastAdversarialTraining
from sparta.defenses.pgd_at import PGDAdversarialTraining
from sparta.defenses.trades import TRADES, kl_per_example
from sparta.defenses.validation import RobustValidation
from sparta.defenses.wot import WOT

__all__ = [
    "AdversarialObjective",
    "DenoiserObjective",
    "DenoiserValidation",
    "TRADES",
    "WOT",
    "FastAdversarialTraining",
    "PGDAdversarialTraining",
    "RobustValidation",
    "freeze_classifier",
    "kl_per_example",
    "mse_pretrain",
    "noisy_accuracy",
    "perturb",
    "prepare",
]
