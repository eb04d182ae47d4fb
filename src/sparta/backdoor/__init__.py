"""Backdoors: BadNets and blended poisoning, attack success rate and data-free trigger
recovery. Trojan-ticket detection by pruning (arXiv 2205.11819) composes sparsity and
backdoors, so it lives in :mod:`sparta.experiments.trojan`; removal by unlearning is the
recipe :func:`sparta.experiments.backdoor_removal.remove`.

    poisoned = sparta.backdoor.poison(train, "badnets:ratio=0.05,target=0")
    sparta.backdoor.asr(model, test, poisoned.trigger, target=0)
    rec = sparta.backdoor.recover(model, (1, 28, 28), 10)  # rec.target
"""

from sparta.backdoor.metrics import asr, backdoor_metrics, clean_accuracy
from sparta.backdoor.poison import (
    BlendTrigger,
    PatchTrigger,
    PoisonConfig,
    PoisonedData,
    parse_poison,
    poison,
    stamp,
)
from sparta.backdoor.recover import (
    RecoveredTrigger,
    RecoverOptions,
    RecoveryResult,
    anomaly_index,
    recover,
)

__all__ = [
    "BlendTrigger",
    "PatchTrigger",
    "PoisonConfig",
    "PoisonedData",
    "RecoverOptions",
    "RecoveredTrigger",
    "RecoveryResult",
    "anomaly_index",
    "asr",
    "backdoor_metrics",
    "clean_accuracy",
    "parse_poison",
    "poison",
    "recover",
    "stamp",
]
