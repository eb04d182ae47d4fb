"""CIFAR-style VGG with BatchNorm (Simonyan & Zisserman 2015; Ioffe & Szegedy 2015)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from sparta.data.base import DatasetInfo
from sparta.models.layers import (
    Normalize,
    check_input_shape,
    conv3x3,
    conv_layers,
    dataset_args,
    init_conv_bn,
)
from sparta.models.registry import register_model

VGG_CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M"]
    + [512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(nn.Sequential):
    """(conv3x3 -> BN -> ReLU) blocks with 2x2 max-pools ("M"), global average pooling and a
    single linear classifier.

    A pool is skipped once the map is smaller than 2 pixels, so 8x8 inputs work. Layers are
    named ``conv{i}, bn{i}, relu{i}, pool{j}, avgpool, flatten, fc``.
    """

    def __init__(
        self,
        config: Sequence[int | str],
        input_shape: Sequence[int],
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
        width: float = 1.0,
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict(normalize=Normalize(mean, std))
        c, _, _, _ = conv_layers(
            layers,
            config,
            check_input_shape(input_shape),
            width,
            lambda i, c_in, c_out: {
                f"conv{i}": conv3x3(c_in, c_out),
                f"bn{i}": nn.BatchNorm2d(c_out),
                f"relu{i}": nn.ReLU(),
            },
        )
        layers["avgpool"] = nn.AdaptiveAvgPool2d(1)
        layers["flatten"] = nn.Flatten()
        layers["fc"] = nn.Linear(c, num_classes)
        super().__init__(layers)
        init_conv_bn(self)


@register_model("vgg11", aliases=("vgg11-bn",), family="vgg")
def vgg11(info: DatasetInfo, width: float = 1.0) -> VGG:
    """VGG-11 with BatchNorm, CIFAR-style (global pooling, one linear classifier)."""
    return VGG(VGG_CONFIGS["vgg11"], *dataset_args(info), width)


@register_model("vgg16", aliases=("vgg16-bn",), family="vgg")
def vgg16(info: DatasetInfo, width: float = 1.0) -> VGG:
    """VGG-16 with BatchNorm, CIFAR-style (global pooling, one linear classifier)."""
    return VGG(VGG_CONFIGS["vgg16"], *dataset_args(info), width)
