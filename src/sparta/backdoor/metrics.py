"""Attack success rate and clean accuracy of a (possibly Trojaned) model."""

from __future__ import annotations

import torch
from torch import nn

from sparta.backdoor.poison import Trigger
from sparta.data import ImageDataset, as_dataset
from sparta.train.evaluate import evaluate, predict


def asr(
    model: nn.Module,
    data: ImageDataset,
    trigger: Trigger,
    target: int,
    batch_size: int = 1000,
) -> float:
    """Attack success rate: the share of triggered images whose true class is not ``target``
    that ``model`` classifies as ``target``. Target-class images are left out."""
    data = as_dataset(data)
    keep = torch.nonzero(data.y.cpu() != target).flatten()
    if len(keep) == 0:
        raise ValueError(f"no test image outside the target class {target}; ASR is undefined")
    trigger.check(tuple(data.input_shape))
    hits = 0
    for start in range(0, len(keep), batch_size):
        idx = keep[start : start + batch_size].to(data.x.device)
        logits = predict(model, trigger.apply(data.x[idx]), batch_size)
        hits += int((logits.argmax(1).cpu() == target).sum())
    return hits / len(keep)


def clean_accuracy(model: nn.Module, data: ImageDataset, batch_size: int = 1000) -> float:
    """Accuracy on the untouched images."""
    return evaluate(model, data, batch_size)["acc"]


def backdoor_metrics(
    model: nn.Module, data: ImageDataset, trigger: Trigger, target: int, batch_size: int = 1000
) -> dict[str, float]:
    """``{"test_acc", "asr"}`` of ``model`` on ``data``."""
    data = as_dataset(data)
    return {
        "test_acc": clean_accuracy(model, data, batch_size),
        "asr": asr(model, data, trigger, target, batch_size),
    }
