"""FT: fine-tune on the retain set (catastrophic forgetting of the forget set).

Defaults: 10 epochs at lr 0.01 (2304.04934's code, Unlearn-Sparse README "FT" command).
"""

from __future__ import annotations

from torch import nn

from sparta.train import TrainConfig
from sparta.unlearn.methods.base import Plan, register_method
from sparta.unlearn.options import UnlearnOptions
from sparta.unlearn.settings import Setting


@register_method("ft", epochs=10, lr=0.01, summary="fine-tune on the retain set")
def prepare(model: nn.Module, setting: Setting, opts: UnlearnOptions, base: TrainConfig) -> Plan:
    """Fine-tune on the retain set with plain cross-entropy."""
    return Plan(setting.retain)
