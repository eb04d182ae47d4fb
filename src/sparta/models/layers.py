"""Small building blocks shared by the architectures."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std``: the first layer of every sparta model.

    Inputs stay in pixel space ([0, 1]); the statistics are buffers of shape ``(1, C, 1, 1)``
    that travel with the ``state_dict``. A single value (``C = 1``) broadcasts over channels.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float] | float, std: Sequence[float] | float) -> None:
        super().__init__()
        m = torch.as_tensor(mean, dtype=torch.float32).detach().clone().flatten()
        s = torch.as_tensor(std, dtype=torch.float32).detach().clone().flatten()
        if m.numel() == 0 or m.numel() != s.numel():
            raise ValueError(
                f"mean and std need the same positive length, got {m.numel()} and {s.numel()}"
            )
        if not bool(torch.isfinite(m).all()) or not bool((s > 0).all()):
            raise ValueError(
                f"std must be positive and mean finite, got mean={m.tolist()} std={s.tolist()}"
            )
        self.register_buffer("mean", m.view(1, -1, 1, 1))
        self.register_buffer("std", s.view(1, -1, 1, 1))

    @property
    def channels(self) -> int:
        """Number of channels the statistics describe."""
        return self.mean.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        def fmt(t: torch.Tensor) -> str:
            return "(" + ", ".join(f"{v:.4g}" for v in t.flatten().tolist()) + ",)"

        return f"mean={fmt(self.mean)}, std={fmt(self.std)}"


def scaled(channels: int, width: float) -> int:
    """``channels`` times the width multiplier, rounded, at least 1."""
    return max(1, round(channels * width))


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Spatial output size of a convolution or pooling along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a BatchNorm follows it)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias, used for projection shortcuts."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


def init_conv_bn(module: nn.Module) -> None:
    """He (fan-out) init for convolutions, ones/zeros for BatchNorm, as in the ResNet papers."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def check_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """Validate a ``(C, H, W)`` shape and return it as a tuple of ints."""
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) with positive sizes, got {input_shape}")
    return shape  # type: ignore[return-value]
