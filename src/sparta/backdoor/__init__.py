"""Backdoors: BadNets and blended poisoning, attack success rate, Trojan-ticket detection by
pruning (arXiv 2205.11819) and data-free trigger recovery. Removal by unlearning is the
recipe ``sparta.experiments.backdoor_removal.remove``.

    poisoned = sparta.backdoor.poison(train, "badnets:ratio=0.05,target=0")
    sparta.backdoor.asr(model, test, poisoned.trigger, target=0)
    result = sparta.backdoor.detect(model, train, test=test)   # result.score, result.trojan
    rec = sparta.backdoor.recover(result.ticket, (1, 28, 28), 10)  # rec.target
"""

from sparta.backdoor.detect import DetectOptions, DetectResult, barrier, detect, trojan_score
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
    "DetectOptions",
    "DetectResult",
    "PatchTrigger",
    "PoisonConfig",
    "PoisonedData",
    "RecoverOptions",
    "RecoveredTrigger",
    "RecoveryResult",
    "anomaly_index",
    "asr",
    "backdoor_metrics",
    "barrier",
    "clean_accuracy",
    "detect",
    "parse_poison",
    "poison",
    "recover",
    "stamp",
    "trojan_score",
]
