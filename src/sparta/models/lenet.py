"""LeNet-5 (LeCun et al. 1998), sized for any small input."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from sparta.data.base import DatasetInfo
from sparta.models.layers import Normalize, check_input_shape, conv_out, dataset_args, scaled
from sparta.models.registry import register_model


class LeNet5(nn.Sequential):
    """conv(6, 5x5) -> ReLU -> maxpool2 -> conv(16, 5x5) -> ReLU -> maxpool2 -> 120 -> 84 -> out.

    Inputs of 32 px and more use the classic unpadded first convolution; smaller inputs pad it
    by 2 (the usual MNIST variant), and the second convolution is padded by 2 when its input is
    smaller than 10 px, so 8x8 digits still reach the classifier with a 2x2 map.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
        width: float = 1.0,
    ) -> None:
        c, h, w = check_input_shape(input_shape)
        c1, c2, f1, f2 = (scaled(n, width) for n in (6, 16, 120, 84))
        pad1 = 2 if min(h, w) < 32 else 0
        h1, w1 = conv_out(h, 5, 1, pad1) // 2, conv_out(w, 5, 1, pad1) // 2
        pad2 = 0 if min(h1, w1) >= 10 else 2
        h2, w2 = conv_out(h1, 5, 1, pad2) // 2, conv_out(w1, 5, 1, pad2) // 2
        if min(h2, w2) < 1:
            raise ValueError(f"lenet5 needs inputs of at least 4x4 pixels, got {h}x{w}")
        super().__init__(
            OrderedDict(
                normalize=Normalize(mean, std),
                conv1=nn.Conv2d(c, c1, 5, padding=pad1),
                relu1=nn.ReLU(),
                pool1=nn.MaxPool2d(2),
                conv2=nn.Conv2d(c1, c2, 5, padding=pad2),
                relu2=nn.ReLU(),
                pool2=nn.MaxPool2d(2),
                flatten=nn.Flatten(),
                fc1=nn.Linear(c2 * h2 * w2, f1),
                relu3=nn.ReLU(),
                fc2=nn.Linear(f1, f2),
                relu4=nn.ReLU(),
                fc3=nn.Linear(f2, num_classes),
            )
        )


@register_model("lenet5", family="lenet")
def lenet5(info: DatasetInfo, width: float = 1.0) -> LeNet5:
    """LeNet-5: two 5x5 conv/pool stages (6, 16 maps), then 120 -> 84 -> classes."""
    return LeNet5(*dataset_args(info), width)
