"""Fully connected networks: LeNet-300-100 and a wide MLP."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from sparta.data.base import DatasetInfo
from sparta.models.layers import Normalize, check_input_shape, dataset_args, fc_layers
from sparta.models.registry import register_model


class MLP(nn.Sequential):
    """``Normalize -> Flatten -> (Linear -> ReLU) x len(hidden) -> Linear``.

    Layers are named ``fc1, relu1, fc2, relu2, ..., fc{k}``.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
        hidden: Sequence[int] = (300, 100),
        width: float = 1.0,
    ) -> None:
        c, h, w = check_input_shape(input_shape)
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            normalize=Normalize(mean, std), flatten=nn.Flatten()
        )
        fc_layers(layers, c * h * w, hidden, num_classes, width)
        super().__init__(layers)


@register_model("lenet300", aliases=("mlp", "lenet300-100"), family="mlp")
def lenet300(info: DatasetInfo, width: float = 1.0, hidden: Sequence[int] = (300, 100)) -> MLP:
    """LeNet-300-100 (LeCun et al. 1998): flatten, 300 and 100 ReLU units, linear output."""
    return MLP(*dataset_args(info), hidden, width)


@register_model("mlp-wide", aliases=("wide-mlp",), family="mlp")
def mlp_wide(
    info: DatasetInfo, width: float = 1.0, hidden: Sequence[int] = (1024, 1024, 1024)
) -> MLP:
    """Wide MLP: three hidden ReLU layers of 1024 x width units (width 2: 2048), the size at
    which block-sparse layers (``--pixelfly``) pay off."""
    return MLP(*dataset_args(info), hidden, width)
