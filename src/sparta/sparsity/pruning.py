"""``prune``: score, select with a structure and a scope, attach masks, return a handle."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from sparta.data import ImageDataset
from sparta.sparsity.criteria import criterion, score
from sparta.sparsity.handle import SparsityHandle
from sparta.sparsity.masks import prunable_parameters
from sparta.sparsity.structures import Structure, check_scope, parse_structure, select
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


def prune(
    model: nn.Module,
    method: str = "magnitude",
    sparsity: float = 0.9,
    structure: str = "unstructured",
    scope: str = "global",
    data: ImageDataset | None = None,
    include: str | Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    **criterion_options: Any,
) -> SparsityHandle:
    """Prune ``model`` in place to ``sparsity`` and return its :class:`SparsityHandle`.

    ``method`` names a criterion (``sparta.sparsity.criteria.criterion_names()``), or for
    ``structure="channel"`` a channel score of :mod:`sparta.sparsity.channels`.
    ``structure``: ``unstructured``, ``nm:N:M`` (sparsity fixed at ``1 - N/M``; sparsity and
    scope ignored), ``block:b`` or ``channel``. ``scope``: ``global``, ``layer`` or ``erk``.
    ``data`` feeds data-dependent criteria; ``include``/``exclude`` are globs over parameter
    names (default: every Linear/Conv weight). Iterative criteria (SynFlow) run
    ``rounds`` rounds (default theirs, 100 for SynFlow) with the exponential schedule: round
    ``k`` of ``n`` keeps density ``(1 - sparsity) ** (k / n)``. Other keyword options go to
    the criterion (e.g. ``batches``, ``seed``). The kept count is exact up to rounding.
    """
    check_sparsity(sparsity)
    check_scope(scope)
    st = parse_structure(structure)
    if st.kind == "channel":
        channels = importlib.import_module("sparta.sparsity.channels")
        masks = channels.channel_masks(model, sparsity, method, scope, data, **criterion_options)
        return SparsityHandle(model, masks)
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
        scores = score(method, model, params, data, **opts)
        round_sparsity = sparsity if k == rounds else 1.0 - (1.0 - sparsity) ** (k / rounds)
        masks = select(st, scores, round_sparsity, scope)
    assert masks is not None
    for name, mask in masks.items():
        if not bool(mask.any()):
            log.warning("%s is pruned entirely (layer collapse); try scope='layer' or 'erk'", name)
    return SparsityHandle(model, masks)
