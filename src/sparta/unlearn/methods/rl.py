"""RL: fine-tune on the forget set with random labels, together with the retain set.

Forget samples carry the label ``-(y + 1)`` in the training data; the objective draws a
fresh uniform random label (over all classes) for each of them in every batch, as the
SalUn code's CIFAR-10 branch does per batch. Forget and retain samples are shuffled
together (the code's CIFAR-100 branch; its CIFAR-10 branch runs the forget loader, then the
retain loader). Defaults: 10 epochs at lr 0.013 (SalUn README, RL/SalUn on CIFAR-10 10%).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sparta.data import ImageDataset
from sparta.train import TrainConfig
from sparta.unlearn.methods.base import Plan, register_method
from sparta.unlearn.options import UnlearnOptions
from sparta.unlearn.settings import Setting


class RandomLabels:
    """Cross-entropy where negative labels (forget samples) become random classes."""

    def __init__(self, num_classes: int, seed: int = 0) -> None:
        self.num_classes = num_classes
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        forget = y < 0
        target = y.clone()
        n = int(forget.sum())
        if n:
            rand = torch.randint(0, self.num_classes, (n,), generator=self.generator)
            target[forget] = rand.to(y.device)
        return F.cross_entropy(logits, target), logits


def marked_union(setting: Setting) -> ImageDataset:
    """Forget samples (labels ``-(y+1)``) and retain samples (true labels) in one set."""
    f, r = setting.forget, setting.retain
    return ImageDataset(
        torch.cat([f.x, r.x]),
        torch.cat([-(f.y + 1), r.y]),
        f.info,
        f.split,
        torch.cat([f.indices, r.indices]),
    )


def rl_plan(setting: Setting, opts: UnlearnOptions) -> Plan:
    """The RL plan (shared with SalUn)."""
    return Plan(marked_union(setting), objective=RandomLabels(setting.train.num_classes, opts.seed))


@register_method("rl", epochs=10, lr=0.013, summary="random labels on the forget set + retain")
def prepare(model: nn.Module, setting: Setting, opts: UnlearnOptions, base: TrainConfig) -> Plan:
    """Random-label fine-tuning on forget + retain."""
    return rl_plan(setting, opts)
