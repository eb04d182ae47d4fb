"""Conv-2/4/6 of the lottery-ticket paper (Frankle & Carbin 2019, Figure 2)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from sparta.data.base import DatasetInfo
from sparta.models.layers import Normalize, check_input_shape, scaled
from sparta.models.registry import register_model

CONV_CONFIGS: dict[str, list[int | str]] = {
    "conv2": [64, 64, "M"],
    "conv4": [64, 64, "M", 128, 128, "M"],
    "conv6": [64, 64, "M", 128, 128, "M", 256, 256, "M"],
}


class ConvNet(nn.Sequential):
    """3x3 convs (padding 1) with ReLU and 2x2 max-pools ("M"), then FC 256-256-classes.

    A pool is skipped when the feature map is already smaller than 2 pixels (tiny inputs).
    Layers are named ``conv{i}``, ``pool{j}``, ``fc{k}`` and ``relu{n}`` (numbered in order).
    """

    def __init__(
        self,
        config: Sequence[int | str],
        input_shape: Sequence[int],
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
        fc: Sequence[int] = (256, 256),
        width: float = 1.0,
    ) -> None:
        c, h, w = check_input_shape(input_shape)
        layers: OrderedDict[str, nn.Module] = OrderedDict(normalize=Normalize(mean, std))
        n_conv = n_pool = n_relu = 0
        for item in config:
            if item == "M":
                if min(h, w) >= 2:
                    n_pool += 1
                    layers[f"pool{n_pool}"] = nn.MaxPool2d(2)
                    h, w = h // 2, w // 2
                continue
            out = scaled(int(item), width)
            n_conv += 1
            n_relu += 1
            layers[f"conv{n_conv}"] = nn.Conv2d(c, out, 3, padding=1)
            layers[f"relu{n_relu}"] = nn.ReLU()
            c = out
        layers["flatten"] = nn.Flatten()
        fan_in = c * h * w
        for i, units in enumerate(fc, start=1):
            out = scaled(int(units), width)
            n_relu += 1
            layers[f"fc{i}"] = nn.Linear(fan_in, out)
            layers[f"relu{n_relu}"] = nn.ReLU()
            fan_in = out
        layers[f"fc{len(fc) + 1}"] = nn.Linear(fan_in, num_classes)
        super().__init__(layers)


def _convnet(name: str, info: DatasetInfo, width: float) -> ConvNet:
    return ConvNet(
        CONV_CONFIGS[name], info.input_shape, info.num_classes, info.mean, info.std, width=width
    )


@register_model("conv2", family="convnet")
def conv2(info: DatasetInfo, width: float = 1.0) -> ConvNet:
    """Conv-2: [64, 64, pool], FC 256-256-classes (Frankle & Carbin 2019)."""
    return _convnet("conv2", info, width)


@register_model("conv4", family="convnet")
def conv4(info: DatasetInfo, width: float = 1.0) -> ConvNet:
    """Conv-4: [64, 64, pool, 128, 128, pool], FC 256-256-classes (Frankle & Carbin 2019)."""
    return _convnet("conv4", info, width)


@register_model("conv6", family="convnet")
def conv6(info: DatasetInfo, width: float = 1.0) -> ConvNet:
    """Conv-6: [64, 64, pool, 128, 128, pool, 256, 256, pool], FC 256-256-classes."""
    return _convnet("conv6", info, width)
