"""Learned masks: a real-valued score per weight, trained instead of (or beside) the weight.

Edge-popup (Ramanujan et al., 1911.13299, §3), HYDRA (Sehwag et al., 2002.10509, §3.2) and
the upper level of BiP (Zhang et al., 2210.04092) keep one score ``s`` per prunable weight
``w``. The forward pass uses ``w * top_k(s)``; the top-k indicator has no useful gradient, so
the gradient reaches the scores straight through it (1911.13299, eq. 2):
``dL/ds = dL/d(w_eff) * w``. :class:`ScoredModel` wraps any model this way without touching
its modules (``torch.func.functional_call`` substitutes the effective weights), and
:meth:`ScoredModel.finalize` hands back the plain model with the chosen masks attached as
buffers (the convention of :mod:`sparta.train.masks`), ready for fine-tuning, saving and
every pillar.

>>> scored = ScoredModel(model, sparsity=0.9, init="magnitude")   # HYDRA's start
>>> # train scored.parameters() (only the scores require grad) with any objective
>>> model = scored.finalize()                                       # masks as buffers
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from sparta import io
from sparta.models.registry import SPEC_ATTR
from sparta.sparsity.masks import SUFFIX, attach, prunable_parameters
from sparta.sparsity.structures import Structure, parse_structure, select
from sparta.sparsity.topk import check_sparsity

#: how scores start: ``kaiming`` (edge-popup: Kaiming-uniform, 1911.13299 §4), ``magnitude``
#: (HYDRA: the weights scaled by sqrt(6 / fan_in) / max|w|, 2002.10509 §3.2) or ``abs``
#: (|w|: the top-k mask at step 0 equals magnitude pruning's)
SCORE_INITS = ("kaiming", "magnitude", "abs")


def _fan_in(p: torch.Tensor) -> int:
    return int(p[0].numel()) if p.dim() > 1 else int(p.numel())


def init_scores(
    params: Mapping[str, torch.Tensor], how: str = "magnitude", seed: int = 0
) -> dict[str, torch.Tensor]:
    """Initial scores for ``params`` (see :data:`SCORE_INITS`); float32, same shapes."""
    if how not in SCORE_INITS:
        raise ValueError(f"score init {how!r} is not allowed; expected one of {SCORE_INITS}")
    g = torch.Generator().manual_seed(int(seed))
    out = {}
    for name, p in params.items():
        w = p.detach().float().cpu()
        if how == "kaiming":
            bound = 1.0 / math.sqrt(_fan_in(w))  # kaiming_uniform_(a=sqrt(5)), nn.Linear's init
            s = (torch.rand(w.shape, generator=g) * 2 - 1) * bound
        elif how == "magnitude":
            top = float(w.abs().max()) or 1.0
            s = math.sqrt(6.0 / _fan_in(w)) * w / top
        else:
            s = w.abs()
        out[name] = s.to(p.device)
    return out


@torch.no_grad()
def signed_constant_(model: nn.Module, params: Iterable[str] | None = None) -> None:
    """Edge-popup's signed-constant init (1911.13299 §4.1): every weight becomes
    ``sign(w) * sqrt(2 / fan_in)`` (the standard deviation of Kaiming-normal with ReLU gain)."""
    named = dict(model.named_parameters())
    for name in params if params is not None else prunable_parameters(model):
        p = named[name]
        p.copy_(torch.sign(p) * math.sqrt(2.0 / _fan_in(p)))


def straight_through(score: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``mask`` in the forward pass, the identity towards ``score`` in the backward pass."""
    return mask.to(score.dtype) + (score - score.detach())  # exactly the mask forward


class ScoredModel(nn.Module):
    """``model`` whose prunable weights are multiplied by the top-k mask of learned scores.

    ``sparsity``/``structure``/``distribution`` choose the mask from the scores with the
    pruner's own selection (:func:`sparta.sparsity.structures.select`); edge-popup and HYDRA
    rank per layer (``distribution="uniform"``), BiP globally. With ``train_weights=False``
    (edge-popup, HYDRA's score phase) the wrapped model's parameters are frozen and only the
    scores are parameters that require grad; with ``True`` (BiP) the weights train through the
    current mask as well. The wrapped model's other parameters (biases, norms) follow
    ``train_weights`` too.
    """

    def __init__(
        self,
        model: nn.Module,
        sparsity: float,
        *,
        init: str | Mapping[str, torch.Tensor] = "magnitude",
        structure: str | Structure = "unstructured",
        distribution: str | Mapping[str, float] = "uniform",
        params: Iterable[str] | None = None,
        train_weights: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        check_sparsity(sparsity)
        self.structure = parse_structure(structure)
        if self.structure.kind == "channel":
            raise ValueError("ScoredModel scores weights; structure 'channel' is not supported")
        self.sparsity = float(sparsity)
        self.distribution = distribution
        self.model = model
        named = dict(model.named_parameters())
        names = list(params) if params is not None else list(prunable_parameters(model))
        unknown = [n for n in names if n not in named]
        if unknown:
            raise ValueError(f"no parameter named {unknown[0]!r} to score")
        self.names = names
        start = (
            init_scores({n: named[n] for n in names}, init, seed)
            if isinstance(init, str)
            else {n: init[n].detach().float().clone() for n in names}
        )
        # ParameterDict keys cannot hold dots
        self.scores = nn.ParameterDict({self._key(n): nn.Parameter(start[n]) for n in names})
        self.set_train_weights(train_weights)
        spec = getattr(model, SPEC_ATTR, None)
        if isinstance(spec, dict):  # checkpoints of the wrapper rebuild the wrapped model
            setattr(self, SPEC_ATTR, copy.deepcopy(spec))

    @staticmethod
    def _key(name: str) -> str:
        return name.replace(".", "__")

    def set_train_weights(self, train: bool) -> None:
        """Freeze (False) or unfreeze (True) the wrapped model's parameters."""
        self.train_weights = bool(train)
        for p in self.model.parameters():
            p.requires_grad_(self.train_weights)

    def score_of(self, name: str) -> nn.Parameter:
        """The score tensor of parameter ``name``."""
        return self.scores[self._key(name)]

    def named_scores(self) -> dict[str, nn.Parameter]:
        """Parameter name -> score (the live parameters)."""
        return {n: self.score_of(n) for n in self.names}

    @torch.no_grad()
    def masks(self) -> dict[str, torch.Tensor]:
        """The boolean masks (True = keep) the current scores select."""
        scores = {n: s.detach() for n, s in self.named_scores().items()}
        return select(self.structure, scores, self.sparsity, self.distribution)

    def effective_weights(self) -> dict[str, torch.Tensor]:
        """``w * top_k(s)`` for every scored parameter, differentiable in ``s`` (straight
        through) and, when ``train_weights``, in ``w``."""
        masks = self.masks()
        named = dict(self.model.named_parameters())
        return {
            n: named[n] * straight_through(self.score_of(n), masks[n]).to(named[n].dtype)
            for n in self.names
        }

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return functional_call(self.model, self.effective_weights(), args, kwargs, strict=False)

    @torch.no_grad()
    def finalize(self) -> nn.Module:
        """The wrapped model with the current masks attached as buffers (pruned weights set to
        exactly zero) and every parameter trainable again; the scores are dropped."""
        masks = self.masks()
        for p in self.model.parameters():
            p.requires_grad_(True)
        attach(self.model, masks)
        return self.model


# Checkpoints. A ScoredModel built from a registered model carries that model's spec, so the
# engine checkpoints it like any model (its state: ``model.<name>`` weights and
# ``scores.<key>`` scores), and ``--resume`` loads it strictly into the rebuilt wrapper. The
# extra below records how the masks are chosen; ``sparta.load`` (which rebuilds the bare
# model from the spec) turns such a checkpoint into the finalized model: the masks the scores
# select, attached as buffers, pruned weights exactly zero.
def _describe_scored(model: nn.Module) -> dict[str, Any] | None:
    if not isinstance(model, ScoredModel):
        return None
    dist = model.distribution
    return {
        "names": list(model.names),
        "sparsity": model.sparsity,
        "structure": str(model.structure),
        "distribution": dist if isinstance(dist, str) else {k: float(v) for k, v in dist.items()},
    }


def _restore_scored(model: nn.Module, tensors: dict[str, torch.Tensor], spec: Any) -> None:
    if isinstance(model, ScoredModel):
        return  # the wrapper itself (resume): its state dict loads as it is
    key = ScoredModel._key
    missing = [n for n in spec["names"] if f"scores.{key(n)}" not in tensors]
    if missing:
        raise ValueError(f"checkpoint lists scores for {missing[0]!r} that it does not hold")
    scores = {n: tensors.pop(f"scores.{key(n)}").float() for n in spec["names"]}
    for k in [k for k in tensors if k.startswith("model.")]:
        tensors[k[len("model.") :]] = tensors.pop(k)
    masks = select(
        parse_structure(spec["structure"]), scores, spec["sparsity"], spec["distribution"]
    )
    for n, m in masks.items():
        tensors[n] = tensors[n] * m.to(tensors[n].dtype)
        tensors[n + SUFFIX] = m
    attach(model, masks)


io.register_extra("scored", _describe_scored, _restore_scored)
