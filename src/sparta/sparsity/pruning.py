"""The pruner: one selection step with four independent axes, and one-shot ``prune``.

* **score**: any registered criterion (:mod:`sparta.sparsity.criteria`; for channels also
  the channel scores of :mod:`sparta.sparsity.channels`);
* **structure**: ``unstructured``, ``nm:N:M``, ``block:b`` or ``channel``
  (:mod:`sparta.sparsity.structures`);
* **distribution**: ``global``, ``uniform`` (alias ``layer``) or ``erk``
  (:mod:`sparta.sparsity.allocation`), or explicit per-layer densities;
* **schedule**: one-shot (:func:`prune`), gradual
  (:class:`sparta.sparsity.schedules.GradualPruning`), iterative with rewinding
  (:mod:`sparta.sparsity.lottery`) or dynamic (:mod:`sparta.sparsity.dst`).

Every schedule that prunes calls :func:`select_masks`: score, rank within the structure and
the distribution, and nest the result in the masks the model already carries (pruned
entries score ``-inf``, so they are the first to stay out and never come back).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from sparta.data import ImageDataset, as_dataset
from sparta.sparsity.allocation import check_distribution
from sparta.sparsity.criteria import criterion, score
from sparta.sparsity.handle import SparsityHandle
from sparta.sparsity.masks import masks_of, prunable_parameters
from sparta.sparsity.structures import Structure, parse_structure, select
from sparta.sparsity.topk import check_sparsity

log = logging.getLogger(__name__)


def check_prunable(
    model: nn.Module,
    structure: str | Structure = "unstructured",
    include: str | Iterable[str] | None = None,
    exclude: Iterable[str] = (),
) -> dict[str, nn.Parameter]:
    """The parameters :func:`prune` would prune; ValueError if none, or if the structure does
    not fit one of them (cheap: call it before loading data to fail early)."""
    params = prunable_parameters(model, include, exclude)
    parse_structure(structure).check({n: p.shape for n, p in params.items()})
    return params


def nest(
    new: Mapping[str, torch.Tensor], current: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``new`` restricted to what ``current`` keeps (names without a current mask pass)."""
    return {n: m & current[n].to(m.device) if n in current else m for n, m in new.items()}


def select_masks(
    model: nn.Module,
    sparsity: float = 0.0,
    method: str = "magnitude",
    structure: str | Structure = "unstructured",
    distribution: str | Mapping[str, float] = "global",
    data: ImageDataset | None = None,
    *,
    params: Mapping[str, nn.Parameter] | None = None,
    **criterion_options: Any,
) -> dict[str, torch.Tensor]:
    """Masks (True = keep) that bring ``params`` (default: every Linear/Conv weight) to
    ``sparsity`` by criterion ``method``, within ``structure`` and ``distribution``.

    The result nests in the model's current masks: entries already pruned score ``-inf``
    and stay pruned. ``distribution`` may be a mapping of per-layer densities (not for
    channels). For ``structure="channel"`` ``sparsity`` is the fraction of channels and
    the masks cover producers, norms and consumers (:mod:`sparta.sparsity.channels`).
    Nothing is attached: the caller decides (one-shot, gradual, iterative).
    """
    check_sparsity(sparsity)
    st = parse_structure(structure)
    current = masks_of(model)
    if st.kind == "channel":
        if isinstance(distribution, Mapping):
            raise ValueError("per-layer densities are not defined for channel sparsity")
        channels = importlib.import_module("sparta.sparsity.channels")
        dist = check_distribution(distribution)
        masks = channels.channel_masks(model, sparsity, method, dist, data, **criterion_options)
        return nest(masks, current)
    if not isinstance(distribution, Mapping):
        distribution = check_distribution(distribution)
    params = dict(params) if params is not None else prunable_parameters(model)
    scores = score(method, model, params, data, **criterion_options)
    scores = {
        n: s.float().masked_fill(~current[n].to(s.device), -float("inf")) if n in current else s
        for n, s in scores.items()
    }
    return nest(select(st, scores, sparsity, distribution), current)


def prune(
    model: nn.Module,
    method: str = "magnitude",
    sparsity: float = 0.9,
    structure: str = "unstructured",
    distribution: str = "global",
    data: ImageDataset | None = None,
    include: str | Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    *,
    scope: str | None = None,
    **criterion_options: Any,
) -> SparsityHandle:
    """Prune ``model`` in place to ``sparsity`` (one shot) and return its handle.

    ``method`` names a criterion (``sparta.sparsity.criteria.criterion_names()``), or for
    ``structure="channel"`` a channel score of :mod:`sparta.sparsity.channels`.
    ``structure``: ``unstructured``, ``nm:N:M`` (sparsity fixed at ``1 - N/M``; sparsity and
    distribution ignored), ``block:b`` or ``channel`` (``sparsity`` = fraction of channels).
    ``distribution``: ``global``, ``uniform`` (alias ``layer``) or ``erk``; ``scope`` is its
    old name, still accepted. ``data`` feeds data-dependent criteria; ``include``/``exclude``
    are globs over parameter names (default: every Linear/Conv weight). Iterative criteria
    (SynFlow) run ``rounds`` rounds (default theirs, 100 for SynFlow) with the exponential
    schedule: round ``k`` of ``n`` keeps density ``(1 - sparsity) ** (k / n)``. Other keyword
    options go to the criterion (e.g. ``batches``, ``seed``). The kept count is exact up to
    rounding. Masks the model already carries are respected (the new ones nest in them).
    """
    if scope is not None:
        distribution = scope
    data = None if data is None else as_dataset(data)
    check_sparsity(sparsity)
    distribution = check_distribution(distribution)
    st = parse_structure(structure)
    if st.kind == "channel":
        opts = criterion_options
        return SparsityHandle(
            model, select_masks(model, sparsity, method, st, distribution, data, **opts)
        )
    entry = criterion(method)
    params = check_prunable(model, st, include, exclude)
    rounds = int(criterion_options.pop("rounds", entry.rounds))
    if rounds < 1 or (rounds > 1 and entry.rounds == 1):
        raise ValueError(
            f"rounds={rounds} is not allowed for {method!r}; expected "
            + ("an integer >= 1" if entry.rounds > 1 else "1 (it is a one-shot criterion)")
        )
    if st.density is not None:
        if abs((1 - st.density) - sparsity) > 1e-9:
            log.info("structure %s fixes the sparsity at %.4g", st, 1 - st.density)
        rounds = 1  # a fixed pattern has no schedule
    masks: dict[str, torch.Tensor] | None = None
    for k in range(1, rounds + 1):
        opts = dict(criterion_options, masks=masks) if rounds > 1 else criterion_options
        round_sparsity = sparsity if k == rounds else 1.0 - (1.0 - sparsity) ** (k / rounds)
        masks = select_masks(
            model, round_sparsity, method, st, distribution, data, params=params, **opts
        )
    assert masks is not None
    for name, mask in masks.items():
        if not bool(mask.any()):
            log.warning(
                "%s is pruned entirely (layer collapse); try distribution 'uniform' or 'erk'",
                name,
            )
    return SparsityHandle(model, masks)
