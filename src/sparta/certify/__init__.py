"""Certification: sound bounds (IBP, CROWN, alpha-CROWN), branch-and-bound verification.

Public API (stable; other modules code against it)::

    bounds(model, x, eps, norm="linf", method="ibp"|"crown"|"alpha-crown", y=None) -> Bounds
        Bounds.lower, Bounds.upper        (B, K) sound bounds on the logits over the ball
                                          {x' : |x' - x|_p <= eps} intersected with [0, 1]
        Bounds.margin_lower               (B, K) lower bound on logit[y] - logit[j] (0 at j=y),
                                          None when y is None
        Bounds.preact                     {relu_name: (l, u)} pre-activation bounds of every
                                          ReLU input, each shaped like that input (B, ...)
        Bounds.verified                   (B,) bool, margin_lower > 0 for every j != y
    preact_bounds(model, x, eps, norm="linf", method="ibp") -> {relu_name: (l, u)}
    verify(model, x, y, eps, method="bab", timeout=..., norm="linf", max_branches=...)
        -> VerifyResult (status per example: "verified"|"falsified"|"unknown"|"wrong",
           counterexamples, branches)
    verified_accuracy(model, data, eps, method="crown", timeout=..., n=...) -> dict

Randomized smoothing (``smooth``, ``certify_dataset``), certified training objectives
(``"ibp"``, ``"gaussian"``), neuron stability and linearity grafting live in
``smoothing``, ``training``, ``stability`` and ``grafting``. Stability pruning and PGD as the
falsifier of ``verify`` are recipes in ``sparta.experiments`` (``stability``, ``verify``).
"""

from sparta.certify.api import Bounds, bounds, preact_bounds
from sparta.certify.grafting import GraftedReLU, graft
from sparta.certify.graph import UnsupportedLayerError, trace
from sparta.certify.smoothing import Smoothed, certified_accuracy, certify_dataset, smooth
from sparta.certify.stability import count_unstable, stability_scores
from sparta.certify.training import IBPSchedule, IBPTraining  # registers "ibp", "gaussian"
from sparta.certify.verify import VerifyResult, verified_accuracy, verify

__all__ = [
    "GraftedReLU",
    "IBPSchedule",
    "IBPTraining",
    "Smoothed",
    "certified_accuracy",
    "certify_dataset",
    "count_unstable",
    "graft",
    "smooth",
    "stability_scores",
    "Bounds",
    "UnsupportedLayerError",
    "VerifyResult",
    "bounds",
    "preact_bounds",
    "trace",
    "verified_accuracy",
    "verify",
]
