"""Small building blocks shared by the architectures."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
from torch import nn

from sparta.data.base import DatasetInfo


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


def dataset_args(
    info: DatasetInfo,
) -> tuple[tuple[int, ...], int, tuple[float, ...], tuple[float, ...]]:
    """``(input_shape, num_classes, mean, std)``: the leading arguments of every
    architecture's constructor, read off a dataset's info (``Arch(*dataset_args(info), ...)``)."""
    return tuple(info.input_shape), info.num_classes, tuple(info.mean), tuple(info.std)


def conv_layers(
    layers: OrderedDict[str, nn.Module],
    config: Sequence[int | str],
    shape: tuple[int, int, int],
    width: float,
    block: Callable[[int, int, int], dict[str, nn.Module]],
) -> tuple[int, int, int, int]:
    """Append to ``layers`` one ``block(i, in_channels, out_channels)`` (its named modules)
    per channel count of ``config`` (scaled by ``width``) and a 2x2 max-pool ``pool{j}`` per
    ``"M"``; a pool is skipped once the map is smaller than 2 pixels (tiny inputs).
    Returns ``(channels, height, width, number of blocks)`` after the last layer."""
    c, h, w = shape
    n_conv = n_pool = 0
    for item in config:
        if item == "M":
            if min(h, w) >= 2:
                n_pool += 1
                layers[f"pool{n_pool}"] = nn.MaxPool2d(2)
                h, w = h // 2, w // 2
            continue
        out = scaled(int(item), width)
        n_conv += 1
        layers.update(block(n_conv, c, out))
        c = out
    return c, h, w, n_conv


def fc_layers(
    layers: OrderedDict[str, nn.Module],
    fan_in: int,
    hidden: Sequence[int],
    num_classes: int,
    width: float,
    relu_offset: int = 0,
) -> None:
    """Append ``fc{i}`` (``hidden`` units scaled by ``width``) each followed by
    ``relu{relu_offset + i}``, then the linear classifier ``fc{len(hidden) + 1}``."""
    for i, units in enumerate(hidden, start=1):
        out = scaled(int(units), width)
        layers[f"fc{i}"] = nn.Linear(fan_in, out)
        layers[f"relu{relu_offset + i}"] = nn.ReLU()
        fan_in = out
    layers[f"fc{len(hidden) + 1}"] = nn.Linear(fan_in, num_classes)


def stage(
    block: Callable[[int, int, int], nn.Module],
    in_channels: int,
    out_channels: int,
    n: int,
    stride: int,
) -> nn.Sequential:
    """``n`` residual blocks ``block(in, out, stride)``: the first one changes the channels
    and the resolution (``stride``), the others keep them."""
    return nn.Sequential(
        *(
            block(in_channels if b == 0 else out_channels, out_channels, stride if b == 0 else 1)
            for b in range(n)
        )
    )
