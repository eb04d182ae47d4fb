"""Linearity grafting (Chen et al., ICML 2022, "Linearity Grafting: Relaxed Neuron Pruning
Helps Certifiable Robustness"): replace the ReLU of chosen neurons by a learnable linear
function ``a * x + b``, then fine-tune. A grafted neuron is linear everywhere, so it is never
unstable: bound methods bound it exactly and branch and bound never splits on it, while,
unlike a pruned neuron, it still passes information on.

:class:`GraftedReLU` replaces an ``nn.ReLU`` module: ReLU on neurons where ``mask`` is False,
``slope * x + intercept`` where it is True (a neuron is a feature of a Linear output or a
channel of a conv feature map; a mask of the full per-example shape grafts single positions).
For bound propagation it exposes ``mask``, ``slope`` and ``intercept``: on grafted neurons the
exact bounds of ``[l, u]`` are ``a*l + b`` and ``a*u + b`` (swapped when ``a < 0``), and a
linear relaxation is the neuron's own line for both the lower and the upper bound.

:func:`graft` chooses the neurons (whole layers by name, explicit masks, or the most unstable
``fraction`` by :func:`~sparta.certify.stability.stability_scores`) and initialises each line
from the neuron's mean pre-activation bounds ``[l, u]`` on data: the identity where ``l >= 0``,
zero where ``u <= 0``, and for an unstable neuron the centre line of the zonotope (DeepZ)
relaxation, slope ``u / (u - l)`` and intercept ``-u l / (2 (u - l))``, which is the line
closest to the ReLU in the worst case on ``[l, u]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from sparta.data import ImageDataset, as_dataset
from sparta.models.utils import device_of, eval_mode, input_shape_of

INITS = ("bounds", "identity")


class GraftedReLU(nn.Module):
    """ReLU, except on ``mask`` neurons where it is ``slope * x + intercept`` (learnable).

    ``mask``, ``slope`` and ``intercept`` have the neuron shape: ``(features,)``, ``(C,)``
    (per channel of an ``N x C x ...`` input) or the full per-example shape.
    """

    def __init__(
        self,
        mask: torch.Tensor,
        slope: torch.Tensor | None = None,
        intercept: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        mask = mask.detach().to(torch.bool).clone()
        self.register_buffer("mask", mask)
        self.slope = nn.Parameter(
            torch.ones(mask.shape) if slope is None else slope.detach().float().clone()
        )
        self.intercept = nn.Parameter(
            torch.zeros(mask.shape) if intercept is None else intercept.detach().float().clone()
        )
        for name, t in (("slope", self.slope), ("intercept", self.intercept)):
            if t.shape != mask.shape:
                raise ValueError(f"{name} has shape {tuple(t.shape)}, mask {tuple(mask.shape)}")

    def _view(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``t`` broadcastable against ``x`` (N, C, ...)."""
        if t.dim() == x.dim() - 1:
            return t.unsqueeze(0)
        return t.view(1, -1, *([1] * (x.dim() - 2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        line = self._view(self.slope, x) * x + self._view(self.intercept, x)
        return torch.where(self._view(self.mask, x), line, torch.relu(x))

    def interval(
        self, lower: torch.Tensor, upper: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact bounds of the output over the box ``[lower, upper]`` (monotone per neuron)."""
        a, b, m = (self._view(t, lower) for t in (self.slope, self.intercept, self.mask))
        lo_line, up_line = a * lower + b, a * upper + b
        lo = torch.where(m, torch.minimum(lo_line, up_line), torch.relu(lower))
        up = torch.where(m, torch.maximum(lo_line, up_line), torch.relu(upper))
        return lo, up

    def extra_repr(self) -> str:
        return f"grafted={int(self.mask.sum())}/{self.mask.numel()}"


def _relu_shapes(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Per-example input shape of every ``nn.ReLU`` module (one forward pass)."""
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        m.register_forward_hook(
            lambda mod, inp, out, name=name: shapes.__setitem__(name, tuple(inp[0].shape[1:]))
        )
        for name, m in model.named_modules()
        if isinstance(m, nn.ReLU)
    ]
    try:
        with eval_mode(model), torch.no_grad():
            model(x[:1].to(device_of(model)))
    finally:
        for h in hooks:
            h.remove()
    return shapes


@torch.no_grad()
def mean_preact_bounds(
    model: nn.Module, x: torch.Tensor, eps: float, method: str = "ibp", batch_size: int = 256
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """ReLU name -> per-neuron (per feature or channel) mean of the pre-activation bounds."""
    from sparta.certify import preact_bounds

    sums: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    counts: dict[str, int] = {}
    device = device_of(model)
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device)
        for name, (lo, up) in preact_bounds(model, xb, eps, method=method).items():
            dims = [d for d in range(lo.dim()) if d != 1]
            pair = (lo.sum(dims).cpu().double(), up.sum(dims).cpu().double())
            if name in sums:
                pair = (sums[name][0] + pair[0], sums[name][1] + pair[1])
            sums[name] = pair
            counts[name] = counts.get(name, 0) + lo.numel() // lo.shape[1]
    return {n: (lo / counts[n], up / counts[n]) for n, (lo, up) in sums.items()}


def init_from_bounds(lo: torch.Tensor, up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Slope and intercept per neuron from bounds ``[lo, up]`` (see the module doc)."""
    width = (up - lo).clamp_min(1e-12)
    unstable = (lo < 0) & (up > 0)
    slope = torch.where(unstable, up / width, (lo >= 0).to(lo.dtype))
    intercept = torch.where(unstable, -up * lo / (2 * width), torch.zeros_like(lo))
    return slope.float(), intercept.float()


def _fraction_masks(
    scores: Mapping[str, torch.Tensor], fraction: float, scope: str
) -> dict[str, torch.Tensor]:
    """The most unstable ``fraction`` of neurons (over all layers, or of each layer)."""
    if scope == "layer":
        out = {}
        for name, s in scores.items():
            k = round(fraction * s.numel())
            m = torch.zeros(s.numel(), dtype=torch.bool)
            m[torch.argsort(-s.double(), stable=True)[:k]] = True
            out[name] = m
        return out
    if scope != "global":
        raise ValueError(f"scope={scope!r} is not allowed; expected 'global' or 'layer'")
    names = list(scores)
    flat = torch.cat([scores[n].double().flatten() for n in names])
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    chosen[torch.argsort(-flat, stable=True)[: round(fraction * flat.numel())]] = True
    return dict(zip(names, chosen.split([scores[n].numel() for n in names]), strict=True))


def graft(
    model: nn.Module,
    layers: Sequence[str] | None = None,
    *,
    fraction: float | None = None,
    neurons: Mapping[str, torch.Tensor] | None = None,
    data: ImageDataset | torch.Tensor | None = None,
    eps: float = 0.0,
    method: str = "ibp",
    scope: str = "global",
    init: str = "bounds",
) -> dict[str, GraftedReLU]:
    """Replace ``nn.ReLU`` modules of ``model`` (in place) by :class:`GraftedReLU` units.

    Give exactly one of: ``layers`` (ReLU module names, all their neurons grafted),
    ``neurons`` (ReLU name -> bool mask per feature/channel) or ``fraction`` (the most unstable
    fraction of all neurons, or of each layer with ``scope="layer"``, by stability scores on
    ``data`` at ``eps``; needs ``data``). ``init="bounds"`` (needs ``data``) fits each line to
    the neuron's mean pre-activation bounds at ``eps``; ``"identity"`` starts at ``x``.
    Returns the new modules by name (a ReLU with no grafted neuron is left as it is).
    """
    if sum(v is not None for v in (layers, fraction, neurons)) != 1:
        raise ValueError("give exactly one of layers, fraction or neurons")
    if init not in INITS:
        raise ValueError(f"init={init!r} is not allowed; expected one of {INITS}")
    relus = {n for n, m in model.named_modules() if isinstance(m, nn.ReLU)}
    x = None
    if data is not None:
        x = data if isinstance(data, torch.Tensor) else as_dataset(data).x
    if (fraction is not None or init == "bounds") and x is None:
        raise ValueError("graft needs data (inputs) for fraction= or init='bounds'")
    if fraction is not None:
        if not 0 <= fraction <= 1:
            raise ValueError(f"fraction={fraction!r} is not allowed; expected a number in [0, 1]")
        from sparta.certify.stability import stability_scores

        scores = {k: v for k, v in stability_scores(model, x, eps, method).items() if k in relus}
        neurons = _fraction_masks(scores, fraction, scope)
    elif layers is not None:
        unknown = [n for n in layers if n not in relus]
        if unknown:
            raise ValueError(
                f"layer {unknown[0]!r} is not an nn.ReLU module; ReLUs: {sorted(relus)}"
            )
        shapes = _relu_shapes(model, x) if x is not None else _relu_shapes_from_spec(model)
        neurons = {n: torch.ones(shapes[n][:1], dtype=torch.bool) for n in layers}
    assert neurons is not None
    unknown = [n for n in neurons if n not in relus]
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not an nn.ReLU module; ReLUs: {sorted(relus)}")
    means = mean_preact_bounds(model, x, eps, method) if init == "bounds" else {}
    grafted: dict[str, GraftedReLU] = {}
    for name, mask in neurons.items():
        if not bool(mask.any()):
            continue
        slope = intercept = None
        if name in means and means[name][0].shape == mask.shape:
            slope, intercept = init_from_bounds(*means[name])
        unit = GraftedReLU(mask, slope, intercept).to(device_of(model))
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, unit)
        grafted[name] = unit
    return grafted  # cached traces of ``model`` see the new modules and are re-made


def _relu_shapes_from_spec(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return _relu_shapes(model, torch.zeros(1, *input_shape_of(model)))


def grafted_units(model: nn.Module) -> dict[str, GraftedReLU]:
    """Every :class:`GraftedReLU` of ``model`` by module name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, GraftedReLU)}


__all__ = ["GraftedReLU", "graft", "grafted_units", "init_from_bounds", "mean_preact_bounds"]
