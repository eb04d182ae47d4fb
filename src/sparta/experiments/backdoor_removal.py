"""Backdoor removal by machine unlearning: forget the poisoned training samples.

A recipe composing ``sparta.backdoor`` (poisoning, ASR) and ``sparta.unlearn``.

The forget set is exactly the poisoned samples (their positions in the poisoned training
set); any :mod:`sparta.unlearn` method unlearns them (2304.04934 uses unlearning this way
to remove backdoors). ASR and clean accuracy are reported before and after.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sparta.backdoor.metrics import backdoor_metrics
from sparta.backdoor.poison import PoisonedData
from sparta.data import ImageDataset, as_dataset
from sparta.train import TrainConfig
from sparta.unlearn import ForgetSpec, Setting, UnlearnOptions, UnlearnResult
from sparta.unlearn import run as unlearn_run

__all__ = ["PoisonedForget", "RemovalResult", "poisoned_setting", "remove"]


@dataclass(frozen=True)
class PoisonedForget(ForgetSpec):
    """The forget spec of a poisoned set, written ``poisoned:N`` (N samples)."""

    count: int = 0

    def __str__(self) -> str:
        return f"poisoned:{self.count}"


def poisoned_setting(poisoned: PoisonedData, test: ImageDataset) -> Setting:
    """An unlearning setting whose forget set is the poisoned samples."""
    n = len(poisoned.data)
    keep = torch.ones(n, dtype=torch.bool)
    keep[poisoned.positions] = False
    spec = PoisonedForget("poisoned", count=len(poisoned.positions))
    return Setting(poisoned.data, test, poisoned.positions, keep.nonzero().flatten(), spec)


@dataclass
class RemovalResult:
    """The unlearned model, the unlearning result, and figures before and after."""

    model: nn.Module
    unlearn: UnlearnResult
    summary: dict[str, Any]


def remove(
    model: nn.Module,
    poisoned: PoisonedData,
    test: ImageDataset,
    method: str = "salun",
    options: UnlearnOptions | Mapping[str, Any] | None = None,
    train_config: TrainConfig | None = None,
    quiet: bool = True,
) -> RemovalResult:
    """Unlearn ``poisoned``'s poisoned samples from a copy of ``model`` with ``method``.

    ``summary``: ``asr_before``, ``test_acc_before``, ``asr`` and ``test_acc`` (after),
    and the unlearning figures (``ua``, ``ra``, ``ta``, ``mia_efficacy``, ``rte_s``).
    """
    trigger, target = poisoned.trigger, poisoned.config.target
    test = as_dataset(test, split="test", info=poisoned.data.info)
    before = backdoor_metrics(model, test, trigger, target)
    setting = poisoned_setting(poisoned, test)
    result = unlearn_run(
        model, poisoned.data, test, method=method, options=options,
        train_config=train_config, setting=setting, quiet=quiet,
    )  # fmt: skip
    after = backdoor_metrics(result.model, test, trigger, target)
    summary = {
        "asr_before": before["asr"],
        "test_acc_before": before["test_acc"],
        **after,
        "method": result.method,
        "n_forget": len(poisoned.positions),
        **result.summary,
    }
    return RemovalResult(result.model, result, summary)
