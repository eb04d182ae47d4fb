"""CIFAR-style ResNets (He et al. 2016): ResNet-20 and ResNet-18."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from sparta.data.base import DatasetInfo
from sparta.models.layers import (
    Normalize,
    check_input_shape,
    conv1x1,
    conv3x3,
    dataset_args,
    init_conv_bn,
    scaled,
    stage,
)
from sparta.models.registry import register_model


class BasicBlock(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut, then ReLU.

    The shortcut is the identity, or a 1x1 convolution with BatchNorm (option B) when the
    stride or the channel count changes. The addition is an explicit ``+`` in ``forward``.
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU()
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                OrderedDict(
                    conv=conv1x1(in_channels, channels, stride), bn=nn.BatchNorm2d(channels)
                )
            )
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return self.relu2(out)


class ResNet(nn.Module):
    """Stem conv3x3 -> BN -> ReLU, stages of :class:`BasicBlock` (``layer1..layerN``), global
    average pooling and a linear classifier ``fc``. No max-pool in the stem (CIFAR-style)."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
        stem: int,
        stages: Sequence[int],
        blocks: Sequence[int],
        width: float = 1.0,
    ) -> None:
        super().__init__()
        if len(stages) != len(blocks):
            raise ValueError(f"{len(stages)} stage widths but {len(blocks)} block counts")
        c = check_input_shape(input_shape)[0]
        self.normalize = Normalize(mean, std)
        channels = scaled(stem, width)
        self.conv1 = conv3x3(c, channels)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        for i, (planes, n) in enumerate(zip(stages, blocks, strict=True), start=1):
            out = scaled(planes, width)
            stride = 1 if i == 1 else 2
            self.add_module(f"layer{i}", stage(BasicBlock, channels, out, n, stride))
            channels = out
        self.num_stages = len(stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)
        init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(self.normalize(x))))
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(self.flatten(self.avgpool(x)))


@register_model("resnet20", family="resnet")
def resnet20(info: DatasetInfo, width: float = 1.0) -> ResNet:
    """ResNet-20 for CIFAR: stages of 16/32/64 channels, 3 basic blocks each."""
    return ResNet(*dataset_args(info), stem=16, stages=(16, 32, 64), blocks=(3, 3, 3), width=width)


@register_model("resnet18", family="resnet")
def resnet18(info: DatasetInfo, width: float = 1.0) -> ResNet:
    """ResNet-18, CIFAR-style: 3x3 stem, no max-pool, stages 64/128/256/512 of 2 blocks."""
    stages, blocks = (64, 128, 256, 512), (2, 2, 2, 2)
    return ResNet(*dataset_args(info), stem=64, stages=stages, blocks=blocks, width=width)
