"""``bounds``: sound logit and margin bounds of a model over an Lp ball ∩ [0, 1]."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn

from sparta.certify.crown import intermediate_bounds, optimize_bounds, output_bounds
from sparta.certify.domain import InputDomain
from sparta.certify.graph import Graph, Interval, trace
from sparta.certify.ibp import interval, margin_interval, spec_matrix
from sparta.certify.methods import CERTIFY, register_certify_method


def check_method(method: str, allowed: tuple[str, ...] | None = None) -> str:
    """The canonical name of certification ``method`` if it is one of ``allowed`` (default:
    the bound methods, :data:`METHODS`); else a ValueError naming it and the allowed ones."""
    allowed = METHODS if allowed is None else allowed
    key = CERTIFY.resolve(method) if method in CERTIFY else str(method)
    if key not in allowed:
        raise ValueError(f"method={method!r} is not allowed; expected one of {', '.join(allowed)}")
    return key


@dataclass
class Bounds:
    """Sound bounds for a batch over its input domain.

    ``lower``/``upper``: (B, K) logit bounds. ``margin_lower``: (B, K) lower bounds on
    ``z_y - z_j`` (0 at ``j = y``; None without labels). ``preact``: ReLU name -> (l, u), the
    bounds of that ReLU's input, shaped (B, *input shape) (a GraftedReLU counts as a ReLU; on
    its grafted neurons, which no relaxation needs bounds for, CROWN keeps IBP's bounds).
    ``grafted``: GraftedReLU name -> bool (*input shape), its linear neurons.
    """

    lower: torch.Tensor
    upper: torch.Tensor
    margin_lower: torch.Tensor | None
    preact: dict[str, Interval]
    y: torch.Tensor | None = None
    grafted: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def verified(self) -> torch.Tensor:
        """(B,) bool: every margin ``z_y - z_j`` (j != y) is provably positive."""
        if self.margin_lower is None or self.y is None:
            raise ValueError("verified needs labels: call bounds(..., y=labels)")
        is_y = torch.zeros_like(self.margin_lower, dtype=torch.bool)
        is_y[torch.arange(len(self.y), device=self.y.device), self.y] = True
        return ((self.margin_lower > 0) | is_y).all(1)

    def unstable(self) -> dict[str, torch.Tensor]:
        """ReLU name -> bool tensor (B, *shape): pre-activation bounds straddle zero (never on
        a grafted neuron: it is linear)."""
        out = {}
        for k, (lo, up) in self.preact.items():
            straddle = (lo < 0) & (up > 0)
            out[k] = straddle & ~self.grafted[k] if k in self.grafted else straddle
        return out


def _grafted(graph: Graph) -> dict[str, torch.Tensor]:
    found = {n.name: n.op.grafted(n.shape) for n in graph.relus()}  # type: ignore[union-attr]
    return {k: v for k, v in found.items() if v is not None}


def bounds(
    model: nn.Module,
    x: torch.Tensor,
    eps: float,
    norm: str = "linf",
    method: str = "ibp",
    y: torch.Tensor | None = None,
    alpha_steps: int = 20,
) -> Bounds:
    """Sound bounds of ``model`` over ``{x' : ||x' - x||_norm <= eps} ∩ [0, 1]`` per example.

    ``method``: "ibp" (Gowal et al. 2018), "crown" (Zhang et al. 2018; never looser than IBP)
    or "alpha-crown" (Xu et al. 2021; never looser than CROWN: slopes for the output and every
    intermediate layer, ``alpha_steps`` Adam steps, and its tighter ``preact``). Differentiable
    with respect to the model's parameters (IBP and CROWN). BatchNorm uses its running
    statistics and Dropout is the identity (eval semantics) whatever the module's mode. Raises
    ``ValueError`` for a bad method, norm or eps, and
    :class:`~sparta.certify.graph.UnsupportedLayerError` naming a layer the method cannot bound.
    """
    method = check_method(method)
    graph = trace(model, tuple(x.shape[1:]), method)
    chunk = alpha_chunk(graph) if method == "alpha-crown" else len(x)
    if len(x) > chunk:  # alpha-CROWN's autograd graph grows with the batch: bound in chunks
        parts = [
            bounds(model, x[i : i + chunk], eps, norm, method, _part(y, i, chunk), alpha_steps)
            for i in range(0, len(x), chunk)
        ]
        return _concat(parts)
    domain = InputDomain(x, eps, norm)
    if y is not None:
        y = y.to(x.device).long()
    ibp = interval(graph, domain)
    lo, up = ibp[graph.output]
    margin = None if y is None else margin_interval(graph, ibp, y)
    if method == "ibp":
        preact = {n.name: ibp[n.inputs[0]] for n in graph.relus()}
        return Bounds(lo, up, margin, preact, y, _grafted(graph))
    inter = intermediate_bounds(graph, domain, ibp)
    k, b = lo.shape[1], lo.shape[0]
    eye = torch.eye(k, dtype=lo.dtype, device=lo.device).unsqueeze(1).expand(k, b, k)
    rows = [eye, -eye] + ([] if y is None else [spec_matrix(y, k).to(lo.dtype).transpose(0, 1)])
    spec = torch.cat(rows)
    if method == "crown":
        low, _ = output_bounds(graph, domain, spec, inter)
    else:
        low, inter, _ = optimize_bounds(graph, domain, spec, inter, steps=alpha_steps)
    lo = torch.maximum(lo, low[:k].t())
    up = torch.minimum(up, -low[k : 2 * k].t())
    if margin is not None:
        margin = torch.maximum(margin, low[2 * k :].t())
    preact = {n.name: inter[n.inputs[0]] for n in graph.relus()}
    return Bounds(lo, up, margin, preact, y, _grafted(graph))


#: floats that alpha-CROWN's autograd graph may hold per chunk of images, worst case (2 GiB)
ALPHA_BUDGET = 2**29


def alpha_chunk(graph: Graph) -> int:
    """How many images alpha-CROWN bounds at once: its worst case keeps two rows per ReLU
    neuron (the intermediate slopes' lower and upper rows), each as wide as every node before
    it, under autograd, so LeNet-5 at batch 100 would need about 20 GB. The slopes of one
    image never see another's, so chunking changes no image's bound beyond which neurons of
    the others' also get rows."""
    widths = [math.prod(n.shape) for n in graph.nodes]
    per_image = sum(
        2 * math.prod(n.shape) * sum(widths[:i])
        for i, n in enumerate(graph.nodes)
        if n in graph.relus()
    )
    return max(1, ALPHA_BUDGET // max(1, per_image))


def _part(y: torch.Tensor | None, i: int, n: int) -> torch.Tensor | None:
    return None if y is None else y[i : i + n]


def _concat(parts: list[Bounds]) -> Bounds:
    first = parts[0]
    cat = partial(torch.cat, dim=0)
    margins = [p.margin_lower for p in parts]
    return Bounds(
        cat([p.lower for p in parts]),
        cat([p.upper for p in parts]),
        None if first.margin_lower is None else cat(margins),  # type: ignore[arg-type]
        {
            k: (cat([p.preact[k][0] for p in parts]), cat([p.preact[k][1] for p in parts]))
            for k in first.preact
        },
        None if first.y is None else cat([p.y for p in parts]),  # type: ignore[misc]
        first.grafted,
    )


for _name, _summary in (
    ("ibp", "interval bound propagation (Gowal et al. 2018): fast, loosest"),
    ("crown", "linear relaxation, back-substitution (Zhang et al. 2018): never looser than IBP"),
    ("alpha-crown", "CROWN with optimised lower slopes (Xu et al. 2021): never looser than CROWN"),
):
    register_certify_method(_name, partial(bounds, method=_name), "bound", _summary)
#: the bound methods (sound, incomplete), sorted
METHODS: tuple[str, ...] = tuple(CERTIFY.names(family="bound"))


def preact_bounds(
    model: nn.Module, x: torch.Tensor, eps: float, norm: str = "linf", method: str = "ibp"
) -> dict[str, Interval]:
    """ReLU name -> (l, u) bounds of its input over the ball (see :func:`bounds`)."""
    return bounds(model, x, eps, norm, method).preact
