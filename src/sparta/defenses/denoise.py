"""Denoised smoothing (Salman et al. 2020, arXiv 2003.01908) and its black-box form ZO-AE-DS
(Zhang et al. 2022, arXiv 2203.14195): train a front end so that a *fixed* classifier ``f``
classifies Gaussian-noised inputs well, then certify ``f(front(x))`` with randomized smoothing.

Objectives (the model is a :class:`~sparta.models.DenoisedClassifier`):

* MSE (Salman et al. Sec. 3.2, "MSE objective"): ``||D(x + delta) - x||^2``, no classifier
  involved -- :func:`mse_pretrain`, also the autoencoder's reconstruction pre-training of
  ZO-AE-DS (Sec. 4, "two-stage training": the AE is first trained white-box on the images
  alone, then the decoder is kept fixed and merged into the black box).
* Stability (Salman et al. Sec. 3.2, "Stability objective"): ``CE(f(D(x + delta)), f(x))``,
  the classifier's own label on the clean image as target. Salman et al. (Sec. 4) report
  MSE pre-training followed by the stability objective ("MSE+Stab") as their best recipe;
  that is the first-order (white-box) baseline here
  (``black_box=False``: gradients flow through the frozen classifier).
* ZO-AE-DS (Zhang et al. Sec. 4): the same stability loss, but ``f`` only answers queries.
  The loss is a function of the code ``z = Enc(D(x + delta))`` through ``f(Dec(z))``; its
  gradient w.r.t. ``z`` is estimated with RGE (Sec. 3: ``d / (q mu) * sum_i (l(z + mu u_i) -
  l(z)) u_i``, ``u_i`` uniform on the unit sphere) in the low-dimensional code space
  (the point of the autoencoder: the estimate's variance grows with the dimension ``d``), and
  the chain rule through the white-box encoder and denoiser is done by autograd on the
  surrogate ``<z, g>``. Without an autoencoder the estimate is taken on the image (ZO-DS,
  the paper's baseline). The defaults ``mu = 0.005`` follow the paper's code.

Every classifier call of the black-box objective goes through a
:class:`~sparta.models.BlackBox`, whose backward raises and which counts queries exactly:
``N`` (labels of the clean batch) + ``N`` (loss at ``z``) + ``q N`` (RGE) per batch of ``N``.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sparta import progress
from sparta.attacks.zo import rge
from sparta.data import ImageDataset, as_dataset
from sparta.data.base import iterate
from sparta.models import BlackBox, DenoisedClassifier, bare, device_of, eval_mode
from sparta.options import require
from sparta.train.callbacks import Callback

log = logging.getLogger(__name__)


def _check_sigma(sigma: float, allow_zero: bool = False) -> float:
    ok = isinstance(sigma, int | float) and (sigma >= 0 if allow_zero else sigma > 0)
    require(ok, "sigma", sigma, "a number >= 0" if allow_zero else "a number > 0")
    return float(sigma)


def _noise(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """``x + sigma * N(0, I)``, not clipped (as smoothing certifies it)."""
    noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
    return x + sigma * noise.to(x.device)


def mse_pretrain(
    module: nn.Module,
    data: ImageDataset,
    sigma: float = 0.0,
    epochs: int = 1,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    quiet: bool = False,
) -> float:
    """Train the image-to-image ``module`` with Adam on ``||module(x + sigma * noise) - x||^2``
    (``sigma = 0``: plain reconstruction, the autoencoder's pre-training); returns the last
    epoch's mean loss. Only the parameters of ``module`` that require gradients move."""
    sigma = _check_sigma(sigma, allow_zero=True)
    require(isinstance(epochs, int) and epochs >= 0, "epochs", epochs, "an integer >= 0")
    data = as_dataset(data)
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    device = device_of(module)
    g = torch.Generator().manual_seed(seed)
    mean = float("nan")
    was_training = module.training
    module.train()
    for epoch in range(epochs):
        total, seen = 0.0, 0
        batches = iterate(data.x, data.y, batch_size, shuffle=True, generator=g)
        n_batches = -(-len(data) // batch_size)
        for x, _ in progress.bar(batches, total=n_batches, desc=f"mse {epoch + 1}", quiet=quiet):
            x = x.to(device)
            loss = F.mse_loss(module(_noise(x, sigma, g) if sigma else x), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, seen = total + loss.item() * len(x), seen + len(x)
        mean = total / max(seen, 1)
        log.info("mse pre-training epoch %d: loss %.5f", epoch + 1, mean)
    module.train(was_training)
    return mean


def freeze_classifier(model: DenoisedClassifier) -> DenoisedClassifier:
    """Stop gradients into the classifier and the decoder (the fixed side: ZO-AE-DS Sec. 4
    keeps the pre-trained decoder intact); the denoiser and the encoder stay trainable."""
    for part in (model.classifier, model.decoder):
        if part is not None:
            part.requires_grad_(False)
    return model


def prepare(
    model: DenoisedClassifier,
    data: ImageDataset,
    sigma: float,
    epochs: int = 1,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    quiet: bool = False,
) -> DenoisedClassifier:
    """The white-box first stage, which needs no classifier at all: pre-train the autoencoder
    (if any) to reconstruct clean images, then the denoiser with the MSE objective at
    ``sigma``, ``epochs`` each; finally freeze the classifier side (:func:`freeze_classifier`)."""
    if model.encoder is not None and model.decoder is not None:
        ae = nn.Sequential(model.encoder, model.decoder)
        mse_pretrain(ae, data, 0.0, epochs, lr, batch_size, seed, quiet)
    mse_pretrain(model.denoiser, data, sigma, epochs, lr, batch_size, seed + 1, quiet)
    return freeze_classifier(model)


class DenoiserObjective:
    """Stability objective of denoised smoothing, first-order or zeroth-order.

    ``objective(model, x, y)`` (``model`` a :class:`~sparta.models.DenoisedClassifier`, the
    labels ``y`` unused: the target is the classifier's own prediction on the clean ``x``)
    returns ``(loss, logits)``: the mean stability loss at ``x + sigma * noise`` and the
    logits there. With ``black_box`` the loss's gradient reaches the front end only through a
    ZO estimate (``q`` random directions, radius ``mu``) taken at the front end's output;
    ``queries`` counts the classifier's rows. Noise and directions come from ``seed``.
    """

    def __init__(
        self,
        sigma: float = 0.25,
        black_box: bool = False,
        q: int = 20,
        mu: float = 0.005,
        seed: int = 0,
        max_batch: int = 4096,
    ) -> None:
        self.sigma = _check_sigma(sigma)
        require(isinstance(q, int) and q >= 1, "q", q, "an integer >= 1")
        require(isinstance(mu, int | float) and mu > 0, "mu", mu, "a number > 0")
        self.black_box = bool(black_box)
        self.q, self.mu, self.seed, self.max_batch = q, float(mu), seed, max_batch
        self._generator: torch.Generator | None = None
        self._oracle: BlackBox | None = None
        self._resumed = 0  # queries of the run before a --resume

    @property
    def queries(self) -> int:
        """Classifier rows queried so far (0 for the first-order objective)."""
        return self._resumed + (self._oracle.queries if self._oracle is not None else 0)

    def _gen(self) -> torch.Generator:
        if self._generator is None:  # CPU: the same draws on any device
            self._generator = torch.Generator().manual_seed(self.seed)
        return self._generator

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        net = bare(model)
        if not isinstance(net, DenoisedClassifier):
            raise ValueError(
                f"the denoiser objective needs a DenoisedClassifier, got {type(net).__name__}"
            )
        noisy = _noise(x, self.sigma, self._gen())
        if self.black_box:
            return self._zeroth_order(net, x, noisy)
        with eval_mode(net.classifier):
            with torch.no_grad():
                target = net.classifier(x).argmax(1)
            logits = net.back(net.front(noisy))
        return F.cross_entropy(logits, target), logits

    def _zeroth_order(
        self, net: DenoisedClassifier, x: torch.Tensor, noisy: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self._oracle is None or self._oracle.model is not net.classifier:
            self._oracle = BlackBox(net.classifier, self.max_batch)
        oracle, decoder = self._oracle, net.decoder
        target = oracle(x).argmax(1)
        code = net.front(noisy)
        point = code.detach()
        n, shape = len(point), point.shape[1:]

        def scores(z: torch.Tensor) -> torch.Tensor:
            with (
                torch.no_grad(),
                eval_mode(decoder) if decoder is not None else contextlib.nullcontext(),
            ):
                return oracle(decoder(z) if decoder is not None else z)

        def loss_at(z: torch.Tensor) -> torch.Tensor:  # (M, N, *shape) -> (M, N)
            m = len(z)
            logits = scores(z.reshape(m * n, *shape))
            return F.cross_entropy(logits, target.repeat(m), reduction="none").view(m, n)

        logits = scores(point)
        base = F.cross_entropy(logits, target, reduction="none")
        per_call = max(1, self.max_batch // max(n, 1))
        grad = rge(loss_at, point, self.q, self.mu, self._gen(), "sphere", fx=base, batch=per_call)
        # <z, g> has gradient g w.r.t. z; the detached difference makes the reported value the
        # (queried) stability loss itself
        surrogate = (code.flatten(1) * grad.flatten(1)).sum(1).mean()
        loss = surrogate + (base.mean() - surrogate).detach()
        return loss, logits

    def state_dict(self) -> dict[str, Any]:
        """The noise generator's state and the query count (for ``--resume``)."""
        return {"rng": self._gen().get_state(), "queries": self.queries}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self._resumed = int(state.get("queries", 0)) - (
            self._oracle.queries if self._oracle is not None else 0
        )
        if "rng" in state:
            self._gen().set_state(torch.as_tensor(state["rng"], dtype=torch.uint8))


def noisy_accuracy(
    model: nn.Module, data: ImageDataset, sigma: float, seed: int = 0, batch_size: int = 1000
) -> float:
    """Accuracy of ``model`` on ``data`` under one draw of ``N(0, sigma^2)`` pixel noise per
    image (the base classifier's accuracy that randomized smoothing builds on)."""
    data = as_dataset(data)
    g = torch.Generator().manual_seed(seed)
    device = device_of(model)
    correct = 0
    with torch.no_grad(), eval_mode(model):
        for x, y in iterate(data.x, data.y, batch_size):
            pred = model(_noise(x, sigma, g).to(device)).argmax(1).cpu()
            correct += int((pred == y).sum())
    return correct / max(len(data), 1)


class DenoiserValidation(Callback):
    """Training callback: ``val_noisy_acc`` (:func:`noisy_accuracy` on at most ``n``
    validation images, the same noise every epoch) and the objective's ``queries`` after
    each epoch."""

    name = "denoiser-validation"

    def __init__(
        self, val: ImageDataset | None, sigma: float, seed: int = 0, n: int | None = None
    ) -> None:
        self.val = None if val is None else as_dataset(val)
        if self.val is not None and n is not None and n < len(self.val):
            self.val = self.val.take(n, seed=seed)
        self.sigma, self.seed = _check_sigma(sigma), seed

    def on_epoch_end(self, trainer: Any, metrics: dict[str, Any]) -> None:
        if self.val is not None and len(self.val):
            metrics["val_noisy_acc"] = noisy_accuracy(
                trainer.model, self.val, self.sigma, self.seed
            )
        if isinstance(trainer.objective, DenoiserObjective):
            metrics["queries"] = trainer.objective.queries


__all__ = [
    "DenoiserObjective",
    "DenoiserValidation",
    "freeze_classifier",
    "mse_pretrain",
    "noisy_accuracy",
    "prepare",
]
