"""Wide ResNets (Zagoruyko & Komodakis 2016) with pre-activation blocks."""

from __future__ import annotations

import functools
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


class WideBlock(nn.Module):
    """Pre-activation block: BN -> ReLU -> conv3x3 -> BN -> ReLU -> dropout -> conv3x3, plus
    the shortcut (an explicit ``+`` in ``forward``).

    When the shape changes, the shortcut is a 1x1 convolution applied to the activated input
    (as in the reference implementation); otherwise it is the identity on the raw input.
    """

    def __init__(
        self, in_channels: int, channels: int, stride: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu2 = nn.ReLU()
        self.dropout: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv3x3(channels, channels)
        self.project = stride != 1 or in_channels != channels
        self.shortcut: nn.Module = (
            conv1x1(in_channels, channels, stride) if self.project else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu1(self.bn1(x))
        shortcut = self.shortcut(act) if self.project else self.shortcut(x)
        out = self.conv1(act)
        out = self.conv2(self.dropout(self.relu2(self.bn2(out))))
        return out + shortcut


class WideResNet(nn.Module):
    """WRN-``depth``-``widen``: stem conv3x3 (16), three stages of ``(depth - 4) / 6`` blocks
    with 16k/32k/64k channels, final BN -> ReLU, global average pooling and ``fc``."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
        depth: int = 16,
        widen: int = 4,
        dropout: float = 0.0,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"wide resnet depth must be 6n + 4 with n >= 1, got {depth}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        n = (depth - 4) // 6
        c = check_input_shape(input_shape)[0]
        self.normalize = Normalize(mean, std)
        channels = scaled(16, width)
        self.conv1 = conv3x3(c, channels)
        for i, base in enumerate((16, 32, 64), start=1):
            out = scaled(base * widen, width)
            stride = 1 if i == 1 else 2
            block = functools.partial(WideBlock, dropout=dropout)
            self.add_module(f"layer{i}", stage(block, channels, out, n, stride))
            channels = out
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)
        init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.normalize(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = self.relu(self.bn(x))
        return self.fc(self.flatten(self.avgpool(x)))


@register_model("wrn16-4", family="wrn")
def wrn16_4(info: DatasetInfo, width: float = 1.0, dropout: float = 0.0) -> WideResNet:
    """WRN-16-4: wide ResNet of depth 16 and widening factor 4, pre-activation blocks."""
    return WideResNet(*dataset_args(info), depth=16, widen=4, dropout=float(dropout), width=width)
