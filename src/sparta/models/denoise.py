"""Image-to-image front ends for a fixed classifier: a small DnCNN denoiser, a conv autoencoder,
and their composition with the classifier (denoised smoothing; ZO-AE-DS).

* :class:`DnCNN` -- the denoiser of denoised smoothing (Salman et al. 2020, arXiv 2003.01908,
  Sec. 4 uses DnCNN, Zhang et al. 2017, arXiv 1608.03981): ``depth`` 3x3 convolutions with
  ReLUs that predict the noise, subtracted from the input (residual learning). Batch norm is
  left out so that the module is the same function in train and eval mode.
* :class:`ConvEncoder` / :class:`ConvDecoder` -- the autoencoder of ZO-AE-DS (Zhang et al.
  2022, arXiv 2203.14195, Sec. 4): two stride-2 convolutions and a linear map to a ``latent``
  code; the decoder mirrors it and ends in a sigmoid (pixels stay in [0, 1]).
* :class:`DenoisedClassifier` -- ``classifier(decoder(encoder(denoiser(x))))`` as one module,
  built by :func:`create_denoised` through the import path :data:`BUILDER` (not a registry
  name: it is no stand-alone architecture, it needs a classifier's spec, so the registry's
  every-architecture tests and ``sparta list models`` leave it out). Its spec holds the
  classifier's spec and its state dict the classifier's weights, so ``sparta.load`` rebuilds
  the whole pipeline from one checkpoint and ``sparta certify --method smooth`` certifies it
  like any model. The classifier's weights are copied in, not referenced: the checkpoint stays
  valid when the classifier's file moves or is retrained.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from sparta.data.base import DatasetInfo
from sparta.models.layers import check_input_shape, scaled
from sparta.models.registry import create, from_spec, spec_of

#: the import path the composed model's spec records (``sparta.models.create`` rebuilds it)
BUILDER = "sparta.models.denoise:denoised"


class DnCNN(nn.Module):
    """``x - body(x)``: ``depth`` 3x3 convolutions (``features`` maps, ReLU between) estimate
    the noise (DnCNN's residual learning, 1608.03981 Sec. 3)."""

    def __init__(self, channels: int, depth: int = 5, features: int = 32) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth={depth!r} is not allowed; expected an integer >= 2")
        layers: list[nn.Module] = [nn.Conv2d(channels, features, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(features, features, 3, padding=1), nn.ReLU()]
        layers.append(nn.Conv2d(features, channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)


def _quarter(n: int) -> int:
    return math.ceil(math.ceil(n / 2) / 2)  # two stride-2, padding-1 3x3 convolutions


class ConvEncoder(nn.Sequential):
    """conv(16, s2) -> ReLU -> conv(32, s2) -> ReLU -> flatten -> linear(``latent``)."""

    def __init__(self, input_shape: Sequence[int], latent: int, features: int = 16) -> None:
        c, h, w = check_input_shape(input_shape)
        f2 = 2 * features
        super().__init__(
            nn.Conv2d(c, features, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(features, f2, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(f2 * _quarter(h) * _quarter(w), latent),
        )


class ConvDecoder(nn.Module):
    """linear -> ReLU -> two stride-2 transposed convolutions -> crop to (H, W) -> sigmoid."""

    def __init__(self, input_shape: Sequence[int], latent: int, features: int = 16) -> None:
        super().__init__()
        c, h, w = check_input_shape(input_shape)
        self.shape = (c, h, w)
        f2 = 2 * features
        self.grid = (f2, _quarter(h), _quarter(w))
        self.linear = nn.Linear(latent, f2 * _quarter(h) * _quarter(w))
        self.up = nn.Sequential(
            nn.ReLU(),
            nn.Unflatten(1, self.grid),
            nn.ConvTranspose2d(f2, features, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(features, c, 4, stride=2, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        _, h, w = self.shape
        return torch.sigmoid(self.up(self.linear(z))[..., :h, :w])


class DenoisedClassifier(nn.Module):
    """``classifier(decoder(encoder(denoiser(x))))``; without an autoencoder
    ``classifier(denoiser(x))``.

    :meth:`front` is the defender's trainable part (denoiser, then encoder) and
    :meth:`back` the part treated as the black box (decoder merged with the classifier,
    ZO-AE-DS Sec. 4), so a zeroth-order estimate is taken at the code ``front(x)``.
    """

    def __init__(
        self,
        denoiser: nn.Module,
        classifier: nn.Module,
        encoder: nn.Module | None = None,
        decoder: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if (encoder is None) != (decoder is None):
            raise ValueError("an autoencoder needs both an encoder and a decoder")
        self.denoiser = denoiser
        self.encoder = encoder
        self.decoder = decoder
        self.classifier = classifier

    @property
    def has_autoencoder(self) -> bool:
        return self.encoder is not None

    def front(self, x: torch.Tensor) -> torch.Tensor:
        """The denoised image, or its code when there is an autoencoder."""
        out = self.denoiser(x)
        return self.encoder(out) if self.encoder is not None else out

    def back(self, code: torch.Tensor) -> torch.Tensor:
        """The classifier's logits of a code (decoded first) or of an image."""
        return self.classifier(self.decoder(code) if self.decoder is not None else code)

    def restore(self, x: torch.Tensor) -> torch.Tensor:
        """The image the classifier sees: denoised (and passed through the autoencoder)."""
        out = self.denoiser(x)
        return self.decoder(self.encoder(out)) if self.encoder is not None else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.back(self.front(x))


def denoised(
    info: DatasetInfo,
    width: float = 1.0,
    classifier: Mapping[str, Any] | None = None,
    depth: int = 5,
    latent: int = 0,
) -> DenoisedClassifier:
    """A DnCNN denoiser (and a conv autoencoder with ``latent`` > 0) before a fixed classifier."""
    if not isinstance(classifier, Mapping):
        raise ValueError(
            "model 'denoised' needs classifier=<the classifier's spec> (sparta.models.spec_of)"
        )
    if not isinstance(latent, int) or latent < 0:
        raise ValueError(f"latent={latent!r} is not allowed; expected an integer >= 0")
    net = from_spec(classifier)
    shape = tuple(info.input_shape)
    cls_shape = tuple(classifier["dataset"]["input_shape"])
    if cls_shape != shape:
        raise ValueError(
            f"the classifier takes inputs of shape {cls_shape}, the dataset has {shape}"
        )
    c = shape[0]
    encoder = ConvEncoder(shape, latent, scaled(16, width)) if latent else None
    decoder = ConvDecoder(shape, latent, scaled(16, width)) if latent else None
    return DenoisedClassifier(DnCNN(c, depth, scaled(32, width)), net, encoder, decoder)


def create_denoised(
    classifier: nn.Module, depth: int = 5, latent: int = 0, width: float = 1.0
) -> DenoisedClassifier:
    """A fresh denoiser (and autoencoder with ``latent`` > 0) before ``classifier`` (built by
    ``sparta.models.create``), whose weights are copied in; reloadable with ``sparta.load``."""
    spec = spec_of(classifier)
    model = create(BUILDER, spec["dataset"], width, classifier=spec, depth=depth, latent=latent)
    model.classifier.load_state_dict(classifier.state_dict())
    return model  # type: ignore[return-value]
