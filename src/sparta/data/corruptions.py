"""Common corruptions of grey images (Fashion-MNIST-C), generated in pixel space [0, 1].

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations" (ICLR 2019, arXiv 1903.12261), Sec. 3 and their ``make_cifar_c.py``: six of
the fifteen CIFAR-10-C corruptions, each at five severities, with CIFAR-10-C's constants
adapted to 28x28 grey images (Mu & Gilmer's MNIST-C, 1906.02337, keeps the same families):

==============  ========================================  ============================
kind            x' (clipped to [0, 1])                    constant c, severity 1..5
==============  ========================================  ============================
gaussian-noise  x + N(0, c^2)                              0.04 0.06 0.08 0.09 0.10
shot-noise      Poisson(c x) / c                           500  250  100  75   50
gaussian-blur   Gaussian filter, std c px (edges repeat)   CIFAR's 0.4 0.6 0.7 0.8 1.0
                                                           x 28/32 (sizes in pixels)
contrast        (x - mean(x)) c + mean(x), per image      0.75 0.5  0.4  0.3  0.15
brightness      x + c (for grey images HSV's V is x)      0.05 0.1  0.15 0.2  0.3
pixelate        box-average down to int(28 c) px, then    0.95 0.9  0.85 0.75 0.65
                nearest up to 28 px (PIL BOX both ways)
==============  ========================================  ============================

Spatial constants scale with the image side (``side / 32``), so other square sizes work
too. Randomness (the two noises) is drawn from a ``torch.Generator`` seeded with ``seed``:
the same seed gives the same images, and the same noise draw is scaled across severities.

Python: ``corrupt(x, "contrast", 3, seed=0)``; ``corrupted(ds, kind, severity)`` for an
:class:`ImageDataset`; the dataset ``fashion-mnist-c`` (``load("fashion-mnist-c", "test",
corruption="shot-noise", severity=5)``) is Fashion-MNIST's split corrupted.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from sparta.registry import canonical

from . import registry
from .base import ImageDataset
from .idx import FASHION_MNIST_INFO

SEVERITIES = (1, 2, 3, 4, 5)

#: CIFAR-10-C's constants per severity (make_cifar_c.py), see the module docstring
CONSTANTS: dict[str, tuple[float, ...]] = {
    "gaussian-noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot-noise": (500, 250, 100, 75, 50),
    "gaussian-blur": (0.4, 0.6, 0.7, 0.8, 1.0),  # std in pixels of a 32-px image
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
}
CIFAR_SIDE = 32


def _gaussian_noise(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    return x + c * torch.randn(x.shape, generator=g, dtype=x.dtype)


def _shot_noise(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    return torch.poisson(x * c, generator=g) / c


def _gaussian_blur(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    sigma = c * x.shape[-1] / CIFAR_SIDE
    r = max(1, math.ceil(4 * sigma))  # skimage.filters.gaussian truncates at 4 std
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    n, ch, h, w = x.shape
    y = F.pad(x.reshape(n * ch, 1, h, w), (r, r, r, r), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, 1, -1))
    y = F.conv2d(y, k.view(1, 1, -1, 1))
    return y.reshape(n, ch, h, w)


def _contrast(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # over the image (and its channels)
    return (x - mean) * c + mean


def _brightness(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    if x.shape[1] != 1:  # HSV's V = max over channels; hue and saturation kept
        v = x.amax(dim=1, keepdim=True)
        scale = torch.where(v > 0, (v + c).clamp(max=1) / v.clamp(min=1e-12), 1.0)
        return torch.where(v > 0, x * scale, x + c)
    return x + c


def _pixelate(x: torch.Tensor, c: float, g: torch.Generator) -> torch.Tensor:
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(int(h * c), int(w * c)), mode="area")
    return F.interpolate(small, size=(h, w), mode="nearest")


_FUNCTIONS: dict[str, Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]] = {
    "gaussian-noise": _gaussian_noise,
    "shot-noise": _shot_noise,
    "gaussian-blur": _gaussian_blur,
    "contrast": _contrast,
    "brightness": _brightness,
    "pixelate": _pixelate,
}
#: the corruption kinds, in display order
CORRUPTIONS = tuple(_FUNCTIONS)


def check_corruption(kind: str, severity: int) -> str:
    """The canonical name of ``kind`` (``_`` or ``-``); ValueError naming what is allowed."""
    name = canonical(kind)
    if name not in _FUNCTIONS:
        raise ValueError(f"unknown corruption {kind!r}; allowed: {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity={severity!r} is not allowed; expected one of 1..5")
    return name


def corrupt(x: torch.Tensor, kind: str, severity: int, seed: int = 0) -> torch.Tensor:
    """Images ``x`` (N x C x H x W in [0, 1]) corrupted by ``kind`` at ``severity`` (1..5),
    clipped to [0, 1]; deterministic for ``seed``. ``x`` is left unchanged."""
    name = check_corruption(kind, severity)
    if x.ndim != 4:
        raise ValueError(f"images must be N x C x H x W, got shape {tuple(x.shape)}")
    g = torch.Generator().manual_seed(int(seed))
    src = x.detach().to("cpu", torch.float32)
    out = _FUNCTIONS[name](src, float(CONSTANTS[name][severity - 1]), g)
    return out.clamp_(0.0, 1.0).to(x.device, x.dtype)


def corrupted(ds: ImageDataset, kind: str, severity: int, seed: int = 0) -> ImageDataset:
    """``ds`` with its images corrupted (labels, indices and metadata kept; ``split`` gets
    the suffix ``-<kind>-<severity>``)."""
    name = check_corruption(kind, severity)
    return dataclasses.replace(
        ds, x=corrupt(ds.x, name, severity, seed), split=f"{ds.split}-{name}-{severity}"
    )


def every_corruption(
    ds: ImageDataset, seed: int = 0, kinds: tuple[str, ...] = CORRUPTIONS
) -> Iterator[tuple[str, int, ImageDataset]]:
    """``(kind, severity, corrupted ds)`` for every kind of ``kinds`` and severity 1..5."""
    for kind in kinds:
        for s in SEVERITIES:
            yield canonical(kind), s, corrupted(ds, kind, s, seed)


FASHION_MNIST_C_INFO = dataclasses.replace(FASHION_MNIST_INFO, name="fashion-mnist-c")


@registry.register_dataset(
    "fashion-mnist-c",
    info=FASHION_MNIST_C_INFO,
    source="generated from fashion-mnist (sparta.data.corruptions, Hendrycks & Dietterich 2019)",
)
def load_fashion_mnist_c(
    split: str,
    root: str | None,
    download: bool,
    corruption: str = "gaussian-noise",
    severity: int = 3,
    seed: int = 0,
) -> ImageDataset:
    """Fashion-MNIST's ``split`` with ``corruption`` at ``severity`` (1..5), seeded."""
    check_corruption(corruption, int(severity))
    clean = registry.load("fashion-mnist", split, root=root, download=download)
    ds = corrupted(clean, corruption, int(severity), seed)
    return dataclasses.replace(ds, info=FASHION_MNIST_C_INFO)
