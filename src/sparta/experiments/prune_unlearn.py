"""Prune, then unlearn: the recipe of "Model Sparsity Can Simplify Machine Unlearning"
(2304.04934), composing ``sparta.sparsity`` (one-shot magnitude pruning) and
``sparta.unlearn`` (every method).

* :func:`prune_then_unlearn`: prune a copy of the model (optionally fine-tune it), then
  unlearn with one method; ``prune=0`` is plain unlearning.
* :func:`unlearn_bench`: every method on one forget setting, dense and pruned. At each
  sparsity, Retrain on the retain set runs first and is the reference of that sparsity's
  ``avg_gap`` (2304.04934 compares each sparsity with Retrain at that sparsity);
  ``rte_ratio`` is a method's RTE over Retrain's. Tables and plots of its rows are
  ``sparta.report.unlearn``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from sparta.data import ImageDataset
from sparta.sparsity.handle import MaskCallback
from sparta.sparsity.pruning import prune
from sparta.train import TrainConfig, Trainer
from sparta.unlearn import run as unlearn
from sparta.unlearn.api import UnlearnResult, check_dataset
from sparta.unlearn.methods import get_method, method_names
from sparta.unlearn.metrics import GAP_KEYS
from sparta.unlearn.options import UnlearnOptions
from sparta.unlearn.settings import ForgetSpec, Setting, make_setting

log = logging.getLogger(__name__)

COLUMNS = ("method", "sparsity", "ua", "ra", "ta", "mia_efficacy", "avg_gap", "rte_s", "rte_ratio")


def check_prune(sparsity: float) -> None:
    """Raise ValueError unless ``sparsity`` is in [0, 1)."""
    if not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"prune={sparsity!r} is not allowed; expected a sparsity in [0, 1)")


def prune_model(
    model: nn.Module,
    sparsity: float,
    options: UnlearnOptions | None = None,
    train: ImageDataset | None = None,
    train_config: TrainConfig | None = None,
) -> None:
    """Prune first, in place: one-shot magnitude pruning (``sparta.sparsity.pruning``) at
    ``sparsity`` with ``options.prune_scope``, then ``options.prune_finetune`` epochs on
    the full training set ``train`` with the original recipe (the seeds' sparse original
    model is trained after pruning, on all data, before any unlearning)."""
    opts = options or UnlearnOptions()
    check_prune(sparsity)
    prune(model, "magnitude", sparsity, scope=opts.prune_scope)
    if opts.prune_finetune > 0:
        if train is None:
            raise ValueError("prune_finetune needs the training set")
        cfg = opts.recipe(train_config or TrainConfig(), opts.prune_finetune)
        Trainer(model, train, cfg, callbacks=[MaskCallback()], device=opts.device, quiet=True).fit()


def prune_then_unlearn(
    model: nn.Module,
    train: ImageDataset,
    test: ImageDataset,
    method: str = "salun",
    forget: str | ForgetSpec = "random:0.1",
    prune: float = 0.0,
    options: UnlearnOptions | Mapping[str, Any] | None = None,
    train_config: TrainConfig | None = None,
    setting: Setting | None = None,
    **kwargs: Any,
) -> UnlearnResult:
    """:func:`sparta.unlearn.run` (same arguments; ``reference`` and ``quiet`` pass through)
    on a copy of ``model`` first pruned by magnitude to ``prune`` (see :func:`prune_model`;
    0: not pruned); its masks are kept through unlearning. ``details["prune"]`` records
    ``prune``. The caller's model is never modified; RTE counts the method's own work, not
    pruning or evaluation."""
    opts = options if isinstance(options, UnlearnOptions) else UnlearnOptions(**(options or {}))
    get_method(method)
    check_prune(prune)
    base = train_config or TrainConfig()
    check_dataset(model, train)
    setting = setting or make_setting(train, test, forget, seed=opts.seed)
    if prune > 0:
        model = copy.deepcopy(model).to(opts.device)
        prune_model(model, prune, opts, train, base)
    result = unlearn(
        model, train, test, method, options=opts, train_config=base, setting=setting, **kwargs
    )
    result.details["prune"] = float(prune)
    return result


def unlearn_bench(
    model: nn.Module,
    train: ImageDataset,
    test: ImageDataset,
    forget: str | ForgetSpec = "random:0.1",
    methods: Sequence[str] | None = None,
    prune: float = 0.95,
    options: UnlearnOptions | None = None,
    train_config: TrainConfig | None = None,
    setting: Setting | None = None,
    quiet: bool = True,
) -> list[dict[str, Any]]:
    """Rows of :data:`COLUMNS` for ``methods`` (default all) dense and, if ``prune`` > 0,
    pruned to that sparsity (once, shared by the methods; see :func:`prune_model`); Retrain
    is always run as the reference."""
    opts = options or UnlearnOptions()
    names = [get_method(m).name for m in (methods or method_names())]
    names = ["retrain"] + [m for m in dict.fromkeys(names) if m != "retrain"]
    setting = setting or make_setting(train, test, forget, seed=opts.seed)
    rows = []
    for sparsity in [0.0] + ([float(prune)] if prune > 0 else []):
        start = copy.deepcopy(model)
        if sparsity > 0:  # the sparse original model, shared by every method
            prune_model(start, sparsity, opts, train, train_config)
        reference: dict[str, Any] | None = None
        for name in names:
            res = unlearn(
                start, train, test, name, options=opts,
                train_config=train_config, reference=reference, setting=setting, quiet=quiet,
            )  # fmt: skip
            if reference is None:
                reference = {k: res.summary[k] for k in (*GAP_KEYS, "rte_s")}
                res.summary["avg_gap"] = 0.0
            row = {"method": name, **res.summary, "sparsity": sparsity}
            row["rte_ratio"] = row["rte_s"] / max(reference["rte_s"], 1e-12)
            rows.append({k: row[k] for k in COLUMNS})
            log.info("%s", " ".join(f"{k}={v}" for k, v in rows[-1].items()))
    return rows
