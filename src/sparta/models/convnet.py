"""Conv-2/4/6 of the lottery-ticket paper (Frankle & Carbin 2019, Figure 2)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from sparta.data.base import DatasetInfo
from sparta.models.layers import (
    Normalize,
    check_input_shape,
    conv_layers,
    dataset_args,
    fc_layers,
)
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
        layers: OrderedDict[str, nn.Module] = OrderedDict(normalize=Normalize(mean, std))
        c, h, w, n_conv = conv_layers(
            layers,
            config,
            check_input_shape(input_shape),
            width,
            lambda i, c_in, c_out: {
                f"conv{i}": nn.Conv2d(c_in, c_out, 3, padding=1),
                f"relu{i}": nn.ReLU(),
            },
        )
        layers["flatten"] = nn.Flatten()
        fc_layers(layers, c * h * w, fc, num_classes, width, relu_offset=n_conv)
        super().__init__(layers)


def _convnet(name: str, info: DatasetInfo, width: float) -> ConvNet:
    return ConvNet(CONV_CONFIGS[name], *dataset_args(info), width=width)


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
