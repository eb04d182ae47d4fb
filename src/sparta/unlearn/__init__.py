"""Machine unlearning: forget/retain settings, methods by name, UA/RA/TA/MIA metrics.

    result = sparta.unlearn.run(model, train, test, method="salun", forget="random:0.1")
    result.summary  # {"ua", "ra", "ta", "mia_efficacy", "rte_s"}

Methods: ``retrain`` (the reference), ``ft``, ``ga``, ``rl``, ``l1-sparse``, ``salun``;
pruning first, and the every-method benchmark, are ``sparta.experiments.prune_unlearn``.
"""

from sparta.unlearn.api import UnlearnResult, check_dataset, measure, run, write_result
from sparta.unlearn.methods import get_method, method_names, register_method
from sparta.unlearn.metrics import (
    FEATURES,
    accuracies,
    avg_gap,
    mia_efficacy,
    mia_features,
    svc_attack_accuracy,
    svc_mia,
)
from sparta.unlearn.options import UnlearnOptions
from sparta.unlearn.settings import ForgetSpec, Setting, make_setting, parse_forget, read_sets

__all__ = [
    "FEATURES",
    "ForgetSpec",
    "Setting",
    "UnlearnOptions",
    "UnlearnResult",
    "accuracies",
    "avg_gap",
    "check_dataset",
    "get_method",
    "make_setting",
    "measure",
    "method_names",
    "mia_efficacy",
    "mia_features",
    "parse_forget",
    "read_sets",
    "register_method",
    "run",
    "svc_attack_accuracy",
    "svc_mia",
    "write_result",
]
