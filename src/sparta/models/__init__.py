"""Models: a name registry, the architectures of the sparsity and robustness literature, and
counting helpers. Every model takes pixel-space inputs in [0, 1] and starts with
:class:`Normalize`.

>>> from sparta.data.base import DatasetInfo
>>> from sparta.models import create, names
>>> info = DatasetInfo("fashion-mnist", (1, 28, 28), 10, (0.286,), (0.353,))
>>> model = create("lenet300", info)
"""

from sparta.models import convnet, lenet, mlp, pixelfly, resnet, vgg, vit, wrn  # noqa: F401  (register)
from sparta.models.blackbox import BlackBox, BlackBoxGradientError
from sparta.models.count import count_flops, count_nonzero, count_params, weight_sparsity
from sparta.models.denoise import DenoisedClassifier, create_denoised
from sparta.models.layers import Normalize
from sparta.models.pixelfly import PixelflyLinear, pixelfly_
from sparta.models.registry import create, entry, from_spec, names, register_model, spec_of
from sparta.models.utils import (
    bare,
    device_of,
    dtype_of,
    eval_mode,
    frozen,
    grad_flags,
    input_shape_of,
    train_mode,
)

__all__ = [
    "BlackBox",
    "BlackBoxGradientError",
    "DenoisedClassifier",
    "Normalize",
    "bare",
    "count_flops",
    "count_nonzero",
    "count_params",
    "create",
    "create_denoised",
    "device_of",
    "dtype_of",
    "entry",
    "eval_mode",
    "from_spec",
    "frozen",
    "grad_flags",
    "input_shape_of",
    "names",
    "register_model",
    "spec_of",
    "train_mode",
    "weight_sparsity",
    "PixelflyLinear",
    "pixelfly_",
]
