"""Supermasks by edge-popup (Ramanujan et al., 1911.13299): train a mask, never a weight.

The weights of a randomly initialised network stay frozen; each prunable weight gets a score,
the forward pass uses the weights whose scores are in the top ``1 - sparsity`` of their layer
(§3: the same fraction k in every layer), and the scores are trained by SGD straight through
the top-k (§3, eq. 2: ``dL/ds = dL/d(w_eff) * w``). :class:`sparta.sparsity.scores.ScoredModel`
does the masking; this module draws the random weights as the paper does and trains the
scores with the engine, so progress, checkpoints and ``--resume`` work as for any training.

The paper's choices (§4, and its reference configs ``allenai/hidden-networks``):

* weights: Kaiming normal ``N(0, sqrt(2 / fan_in))`` or the *signed Kaiming constant*
  ``sign(w) * sqrt(2 / fan_in)`` (§4.1, which does best); the model's own init is allowed;
* scores: Kaiming uniform (:func:`sparta.sparsity.scores.init_scores`, ``"kaiming"``);
* no biases (the reference networks have none): scored layers' biases are set to zero;
* SGD with momentum 0.9, lr 0.1, cosine decay, weight decay 1e-4 on the scores, batch 128;
* k = 50% kept is about best for a fixed width (§4.2, Fig. 3): ``sparsity=0.5``.

The ranking is by the score itself, as §3 states it (the reference code ranks by ``|s|``).

>>> scored = supermask(model, sparsity=0.5, weights="signed-constant")
>>> model = edge_popup(model, train_set, sparsity=0.5)    # the finalized, masked model
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from sparta.data import ImageDataset
from sparta.sparsity.masks import kept_fraction, masks_of, prunable_parameters
from sparta.sparsity.scores import ScoredModel, _fan_in, signed_constant_
from sparta.sparsity.topk import check_sparsity
from sparta.train.callbacks import Callback
from sparta.train.config import TrainConfig

if TYPE_CHECKING:
    from sparta.train.loop import Trainer

log = logging.getLogger(__name__)

#: how the frozen weights are drawn (1911.13299 §4.1); ``init`` keeps the model's own
WEIGHT_INITS = ("kaiming-normal", "signed-constant", "init")
#: what happens to the biases of scored layers: ``zero`` (the paper's bias-free networks) or
#: ``keep`` (their random init)
BIASES = ("zero", "keep")


def check_choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    """``value`` if it is one of ``allowed``, else ValueError naming both."""
    if value not in allowed:
        raise ValueError(f"{what} {value!r} is not allowed; expected one of {allowed}")
    return value


@torch.no_grad()
def kaiming_normal_(model: nn.Module, params: Iterable[str] | None = None, seed: int = 0) -> None:
    """Redraw each named weight (default: the prunable ones) from ``N(0, sqrt(2 / fan_in))``,
    the paper's Kaiming normal (1911.13299 §4.1), with a generator seeded by ``seed``."""
    g = torch.Generator().manual_seed(int(seed))
    named = dict(model.named_parameters())
    for name in params if params is not None else prunable_parameters(model):
        p = named[name]
        w = torch.randn(p.shape, generator=g) * math.sqrt(2.0 / _fan_in(p))
        p.copy_(w.to(p.device, p.dtype))


@torch.no_grad()
def draw_weights(
    model: nn.Module,
    weights: str = "kaiming-normal",
    bias: str = "zero",
    params: Iterable[str] | None = None,
    seed: int = 0,
) -> list[str]:
    """Set ``model``'s weights as edge-popup starts them (see :data:`WEIGHT_INITS` and
    :data:`BIASES`); returns the names of the weights that will be scored."""
    check_choice(weights, WEIGHT_INITS, "supermask weight init")
    check_choice(bias, BIASES, "supermask bias")
    names = list(params) if params is not None else list(prunable_parameters(model))
    if weights == "kaiming-normal":
        kaiming_normal_(model, names, seed)
    elif weights == "signed-constant":
        kaiming_normal_(model, names, seed)  # the signs of a Kaiming-normal draw
        signed_constant_(model, names)
    if bias == "zero":
        named = dict(model.named_parameters())
        for name in names:
            b = named.get(name.rpartition(".")[0] + ".bias" if "." in name else "bias")
            if b is not None:
                b.zero_()
    return names


def supermask(
    model: nn.Module,
    sparsity: float = 0.5,
    *,
    weights: str = "kaiming-normal",
    bias: str = "zero",
    distribution: str | Mapping[str, float] = "uniform",
    params: Iterable[str] | None = None,
    seed: int = 0,
) -> ScoredModel:
    """``model`` with its weights drawn as edge-popup's (in place) and frozen, wrapped so that
    only its scores train (Kaiming-uniform start): train the result like any model, then
    :meth:`ScoredModel.finalize` it. ``distribution`` is ``uniform`` (the paper's per-layer
    k) or ``global`` (the untrained-GNN tickets' choice, 2211.15335 §3)."""
    check_sparsity(sparsity)
    if masks_of(model):
        raise ValueError("edge-popup needs a model without masks (it chooses its own)")
    names = draw_weights(model, weights, bias, params, seed)
    return ScoredModel(
        model, sparsity, init="kaiming", distribution=distribution, params=names, seed=seed
    )


def edge_popup(
    model: nn.Module,
    train_data: ImageDataset,
    sparsity: float = 0.5,
    config: TrainConfig | None = None,
    *,
    weights: str = "kaiming-normal",
    bias: str = "zero",
    distribution: str | Mapping[str, float] = "uniform",
    val_data: ImageDataset | None = None,
    quiet: bool = True,
) -> nn.Module:
    """Find a supermask of ``model`` on ``train_data`` and return the model with it attached
    (masks as buffers; no weight trained). ``config`` is a :class:`sparta.train.TrainConfig`
    (default: the paper's SGD, lr 0.1, momentum 0.9, cosine, weight decay 1e-4, 10 epochs);
    its ``seed`` draws the weights and scores. For a run folder, checkpoints and resume, use
    ``sparta.train.train(config, model=supermask(...))`` or ``sparta train --supermask``."""
    from sparta.train import Trainer

    cfg = config if config is not None else TrainConfig(weight_decay=1e-4, best_metric="")
    scored = supermask(
        model, sparsity, weights=weights, bias=bias, distribution=distribution, seed=cfg.seed
    )
    torch.manual_seed(cfg.seed)
    cbs = [SupermaskMetrics(scored)]
    Trainer(scored, train_data, cfg, val_data=val_data, callbacks=cbs, quiet=quiet).fit()
    return scored.finalize().eval()


class SupermaskMetrics(Callback):
    """Adds the mask's ``sparsity`` (pruned fraction of the scored weights) to each epoch's
    metrics, so a ``sparta train --supermask`` run's summary carries it."""

    name = "supermask"

    def __init__(self, scored: ScoredModel) -> None:
        self.scored = scored

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        metrics["sparsity"] = 1.0 - kept_fraction(self.scored.masks())
