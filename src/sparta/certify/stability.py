"""Neuron stability and stability-based pruning for certification.

A ReLU neuron is **unstable** on an input when its pre-activation bounds over the input's
perturbation ball straddle zero (``l < 0 < u``): the bound methods must relax it, and branch
and bound must split on it. Li et al. (2022, arXiv 2206.07311, "Can pruning improve certified
robustness of neural networks?", Sec. 3-4) show that pruning leaves fewer unstable neurons,
so bounds are tighter and BaB needs fewer splits, and that pruning aimed at unstable neurons
helps most. (Their own stability method adds a neuron-stability regulariser to IMP training;
here, as the project issue asks, neurons are scored directly.)

* :func:`stability_scores`: for every ReLU, per neuron, the fraction of (input, position)
  pairs of a data batch on which it is unstable at ``eps`` (bounds from
  :func:`sparta.certify.preact_bounds`). For a conv feature map a neuron is a channel.
* :func:`prune_unstable`: structured pruning of the most unstable neurons: the neuron's row of
  the preceding Linear (its channel of the preceding Conv) and its bias, the BatchNorm entries
  between them and the next layer's input columns are masked (the same masks as
  ``sparta.sparsity`` channel pruning, so the model stays exactly compactable). A pruned
  neuron's pre-activation is exactly 0, so it is stable. Ties (e.g. neurons that are never
  unstable) are broken by the smaller L1 norm of the neuron's incoming weights.
* :func:`count_unstable`: unstable neurons per input, by layer.
* :func:`finetune`: a few epochs of the training engine with the masks kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.fx
from torch import nn

from sparta.certify.api import METHODS
from sparta.data import ImageDataset, as_dataset
from sparta.sparsity.channels import masks_for
from sparta.sparsity.groups import PRODUCERS, ChannelGroup, channel_groups
from sparta.sparsity.handle import SparsityHandle
from sparta.sparsity.topk import check_sparsity, n_keep

SCOPES = ("layer", "global")
# layers a neuron passes through unchanged (per channel) between its producer and its ReLU
_PASS_THROUGH = (nn.BatchNorm1d, nn.BatchNorm2d, nn.Identity, nn.Dropout)


def _inputs(data: ImageDataset | torch.Tensor) -> torch.Tensor:
    x = data if isinstance(data, torch.Tensor) else as_dataset(data).x
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or len(x) == 0:
        raise ValueError("data must be a non-empty ImageDataset or a batch tensor (N, ...)")
    return x


def _check(eps: float, method: str) -> None:
    if not isinstance(eps, (int, float)) or not eps >= 0:
        raise ValueError(f"eps={eps!r} is not allowed; expected a number >= 0")
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not allowed; expected one of {METHODS}")


@torch.no_grad()
def unstable_counts(
    model: nn.Module,
    data: ImageDataset | torch.Tensor,
    eps: float,
    method: str = "ibp",
    norm: str = "linf",
    batch_size: int = 256,
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Per ReLU: how many (input, position) pairs each neuron is unstable on (int64 per
    neuron, i.e. per feature or per channel), and how many pairs each neuron was seen on."""
    from sparta.certify import bounds

    _check(eps, method)
    x = _inputs(data)
    device = next(model.parameters()).device
    counts: dict[str, torch.Tensor] = {}
    seen: dict[str, int] = {}
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size].to(device)
        # Bounds.unstable: straddling pre-activations, never a grafted (linear) neuron
        for name, straddle in bounds(model, xb, eps, norm=norm, method=method).unstable().items():
            dims = [d for d in range(straddle.dim()) if d != 1]
            c = straddle.sum(dim=dims).cpu()
            counts[name] = counts[name] + c if name in counts else c
            seen[name] = seen.get(name, 0) + straddle.numel() // straddle.shape[1]
    return counts, seen


def stability_scores(
    model: nn.Module,
    data: ImageDataset | torch.Tensor,
    eps: float,
    method: str = "ibp",
    norm: str = "linf",
    batch_size: int = 256,
) -> dict[str, torch.Tensor]:
    """ReLU name -> per-neuron instability in [0, 1]: the fraction of (input, position) pairs
    of ``data`` on which the neuron's pre-activation bounds at ``eps`` straddle zero."""
    counts, seen = unstable_counts(model, data, eps, method, norm, batch_size)
    return {name: c.double() / seen[name] for name, c in counts.items()}


def count_unstable(
    model: nn.Module,
    data: ImageDataset | torch.Tensor,
    eps: float,
    method: str = "ibp",
    norm: str = "linf",
    batch_size: int = 256,
) -> dict[str, Any]:
    """Unstable ReLU neurons (every position of a feature map counts) per input of ``data``:
    ``{"total": mean per input, "by_layer": {relu: mean per input}, "n": inputs}``."""
    counts, _ = unstable_counts(model, data, eps, method, norm, batch_size)
    n = len(_inputs(data))
    by_layer = {name: float(c.sum()) / n for name, c in counts.items()}
    return {"total": sum(by_layer.values()), "by_layer": by_layer, "n": n}


def relu_producers(model: nn.Module) -> dict[str, str]:
    """ReLU module name -> the Linear/Conv module that produces its input (through BatchNorm,
    Dropout or Identity); ReLUs fed by anything else (a residual sum) map to the producer of
    the sum's first operand, whose channel group the sum shares."""
    gm = torch.fx.symbolic_trace(model)
    mods = dict(model.named_modules())
    out: dict[str, str] = {}
    for node in gm.graph.nodes:
        if node.op != "call_module" or not isinstance(mods.get(node.target), nn.ReLU):
            continue
        src = node.args[0]
        while isinstance(src, torch.fx.Node):
            m = mods.get(src.target) if src.op == "call_module" else None
            if isinstance(m, PRODUCERS):
                out[node.target] = src.target
                break
            if m is not None and not isinstance(m, _PASS_THROUGH):
                break
            src = next((a for a in src.args if isinstance(a, torch.fx.Node)), None)
    return out


def _group_scores(
    model: nn.Module, groups: Sequence[ChannelGroup], scores: dict[str, torch.Tensor]
) -> list[torch.Tensor]:
    """Instability per channel of each group: the sum over the ReLUs the group feeds."""
    owner = {p: i for i, g in enumerate(groups) for p in g.producers}
    out = [torch.zeros(g.size, dtype=torch.float64) for g in groups]
    for relu, producer in relu_producers(model).items():
        if relu in scores and producer in owner:
            s = scores[relu]
            i = owner[producer]
            if s.numel() == out[i].numel():
                out[i] += s.double().cpu()
    return out


def _l1(model: nn.Module, group: ChannelGroup) -> torch.Tensor:
    """Relative L1 norm of each channel's incoming weights (divided by the group mean)."""
    mods = dict(model.named_modules())
    s = sum(mods[n].weight.detach().double().abs().flatten(1).sum(1).cpu() for n in group.producers)
    s = torch.as_tensor(s, dtype=torch.float64)
    return s / max(float(s.mean()), 1e-12)


def _removal_order(inst: torch.Tensor, l1: torch.Tensor) -> torch.Tensor:
    """Indices from first to last to remove: most unstable first, then smallest L1 norm."""
    order = torch.argsort(l1, stable=True)
    return order[torch.argsort(-inst[order], stable=True)]


def select_unstable(
    inst: Sequence[torch.Tensor], l1: Sequence[torch.Tensor], sparsity: float, scope: str
) -> list[torch.Tensor]:
    """Keep-vectors removing ``sparsity`` of the neurons, the most unstable first; every group
    keeps at least one neuron. ``layer``: that fraction of each group; ``global``: of all."""
    check_sparsity(sparsity)
    if scope not in SCOPES:
        raise ValueError(f"scope={scope!r} is not allowed; expected one of {SCOPES}")
    orders = [_removal_order(s, w) for s, w in zip(inst, l1, strict=True)]
    keeps = [torch.ones(len(o), dtype=torch.bool) for o in orders]
    if scope == "layer":
        for keep, o in zip(keeps, orders, strict=True):
            keep[o[: len(o) - max(1, n_keep(len(o), 1 - sparsity))]] = False
        return keeps
    # global: candidates are all but each group's last-to-remove neuron
    cand = [(i, int(c)) for i, o in enumerate(orders) for c in o[:-1]]
    if not cand:
        return keeps
    key_inst = torch.tensor([float(inst[i][c]) for i, c in cand], dtype=torch.float64)
    key_l1 = torch.tensor([float(l1[i][c]) for i, c in cand], dtype=torch.float64)
    total = sum(len(o) for o in orders)
    n_remove = min(total - n_keep(total, 1 - sparsity), len(cand))
    for j in _removal_order(key_inst, key_l1)[:n_remove].tolist():
        i, c = cand[j]
        keeps[i][c] = False
    return keeps


def prune_unstable(
    model: nn.Module,
    data: ImageDataset | torch.Tensor,
    eps: float,
    sparsity: float,
    method: str = "ibp",
    scope: str = "layer",
    norm: str = "linf",
    batch_size: int = 256,
) -> SparsityHandle:
    """Prune ``sparsity`` of the ReLU neurons of ``model`` (in place), most unstable first.

    Instability is :func:`stability_scores` on ``data`` at ``eps``; neurons of groups that no
    ReLU reads are never unstable and go by L1 norm. Returns the :class:`SparsityHandle`
    (masks are structured: rows/channels, biases, BatchNorm entries, next-layer columns).
    """
    check_sparsity(sparsity)
    x = _inputs(data)
    groups = channel_groups(model, tuple(x.shape[1:]))
    if not groups:
        raise ValueError(f"{type(model).__name__} has no prunable neurons (channel groups)")
    scores = stability_scores(model, x, eps, method, norm, batch_size)
    inst = _group_scores(model, groups, scores)
    keeps = select_unstable(inst, [_l1(model, g) for g in groups], sparsity, scope)
    return SparsityHandle(model, masks_for(model, groups, keeps))


def finetune(
    model: nn.Module,
    handle: SparsityHandle | None,
    train: ImageDataset,
    config: Any,
    val: ImageDataset | None = None,
    objective: Any = None,
    callbacks: Sequence[Any] = (),
) -> list[dict[str, Any]]:
    """Fine-tune a pruned ``model`` with the training engine (``config``: a
    :class:`sparta.train.TrainConfig`), keeping its masks; returns the epoch metrics."""
    from sparta.train import Trainer

    cbs = ([handle.callback()] if handle is not None else []) + list(callbacks)
    trainer = Trainer(
        model, train, config, val_data=val, objective=objective, callbacks=cbs, quiet=True
    )
    return trainer.fit()


__all__ = [
    "count_unstable",
    "finetune",
    "prune_unstable",
    "relu_producers",
    "select_unstable",
    "stability_scores",
    "unstable_counts",
]
