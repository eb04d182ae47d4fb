"""Double-Win lottery tickets: sparse subnetworks of a *robustly* pre-trained source model
that transfer to a downstream task with little data (Chen et al., "Data-Efficient Double-Win
Lottery Tickets from Robust Pre-training", ICML 2022, arXiv 2206.04762).

The pipeline (their Sec. 3):

1. pre-train a source model on the source task, with standard training or adversarially
   (PGD-AT: the "robust pre-training" whose tickets the paper finds better);
2. draw a ticket from the pre-trained weights ``theta_p``: the mask ``m`` of one-shot magnitude
   pruning (their OMP; IMP on the source task is the other option there) and the
   subnetwork ``f(x; m * theta_p)``, the task head replaced by a fresh one;
3. transfer: fine-tune the subnetwork's surviving weights on the downstream task with
   standard (ST) or adversarial (AT) training, and measure its standard (clean) and robust
   accuracy there. A *double-win* ticket matches the dense model on both. Their Sec. 4.4
   transfers with 1% and 10% of the downstream data, where robust pre-training helps most.

Here the source and target tasks are two halves of one dataset's classes (class-split names,
:mod:`sparta.data.subsets`: source ``fashion-mnist:classes=0-4``, target ``...:classes=5-9``
with ``fraction`` of its training images), so both tasks have the same input space and the
same number of classes; the head is still re-initialised, as for a new task. Fine-tuning takes
about the same number of optimizer steps in every data regime (``steps``, rounded up to whole
epochs), so a 1% regime is not also a regime with 100x fewer updates.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparta import attacks, progress
from sparta.data import info as data_info
from sparta.io import atomic_write_text, load, save
from sparta.sparsity import SparsityHandle, masks_of, prune
from sparta.sparsity.masks import kept_fraction, prunable_parameters
from sparta.train import TrainConfig, create_objective, load_splits, train
from sparta.train.api import Splits

log = logging.getLogger(__name__)

#: the source pre-trainings compared: name -> objective (None: cross-entropy)
SOURCES = {"standard": None, "robust": "pgd-at"}
#: downstream fine-tuning regimes: ST (standard) and AT (PGD-AT), Sec. 3 of 2206.04762
FINETUNES = {"st": None, "at": "pgd-at"}


def transfer_ticket(
    source: nn.Module,
    sparsity: float,
    *,
    seed: int = 0,
    method: str = "magnitude",
    distribution: str = "global",
) -> nn.Module:
    """The ticket ``f(x; m * theta_p)`` of a pre-trained ``source``, ready for a new task: a
    copy whose body (every prunable layer but the output layer) is pruned one-shot to
    ``sparsity`` by ``method`` on the pre-trained weights (OMP), and whose output layer is
    re-initialised (dense) from ``seed``. ``source`` itself is not changed."""
    model = copy.deepcopy(source)
    head = list(prunable_parameters(model))[-1]
    prune(model, method, sparsity, distribution=distribution, exclude=[head])
    layer = model.get_submodule(head.rpartition(".")[0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer.reset_parameters()
    return model


def body_sparsity(model: nn.Module) -> float:
    """Fraction of the body's prunable weights (all but the output layer's) that are zero."""
    masks = masks_of(model)
    body = {n: m for n, m in masks.items() if n != list(prunable_parameters(model))[-1]}
    return 1.0 - kept_fraction(body) if body else 0.0


def _objective(name: str | None, eps: float, steps: int, seed: int) -> Any:
    return None if name is None else create_objective(name, eps=eps, steps=steps, seed=seed)


def fit(
    model: nn.Module,
    config: TrainConfig,
    objective: str | None = None,
    *,
    eps: float = 0.1,
    attack_steps: int = 5,
    splits: Splits | None = None,
) -> nn.Module:
    """Train ``model`` (masks kept: pruned weights stay zero) on ``config.dataset`` with
    ``objective`` (None: cross-entropy; e.g. ``"pgd-at"`` at ``eps`` with ``attack_steps``);
    no run folder. Returns the trained model (the last epoch)."""
    obj = _objective(objective, eps, attack_steps, config.seed)
    cbs = [SparsityHandle(model).callback()] if masks_of(model) else []
    res = train(
        config,
        model=model,
        objective=obj,
        callbacks=cbs,
        write_run=False,
        quiet=True,
        splits=splits,
    )
    return res.model


def robust_scores(
    model: nn.Module, data: Any, eps: float, steps: int = 20, seed: int = 0
) -> dict[str, float]:
    """``clean_acc`` and ``robust_acc`` (PGD with ``steps`` steps, random start, Linf ``eps``)."""
    rep = attacks.evaluate(
        model, data, eps, attacks=[("pgd", {"steps": steps})], seed=seed, checks=False
    )
    return {"clean_acc": rep.clean_acc, "robust_acc": rep.robust_acc}


@dataclass
class DoubleWinResult:
    """``rows``: one per (source, fraction, finetune, seed) with ``clean_acc``,
    ``robust_acc``, ``sparsity``; ``sources``: the pre-trained source models by name."""

    rows: list[dict[str, Any]]
    sources: dict[str, nn.Module]


def double_win(
    config: TrainConfig,
    *,
    target: str,
    sparsity: float = 0.8,
    fractions: Sequence[float] = (0.01, 0.1, 1.0),
    finetunes: Sequence[str] = ("st", "at"),
    sources: Mapping[str, str | None] = SOURCES,
    steps: int = 600,
    eps: float = 0.1,
    attack_steps: int = 5,
    eval_steps: int = 20,
    seeds: Sequence[int] = (0,),
    pretrained: Mapping[str, nn.Module] | None = None,
    folder: str | os.PathLike | None = None,
    quiet: bool = False,
) -> DoubleWinResult:
    """Pre-train one source model per entry of ``sources`` on ``config.dataset`` (name ->
    objective, e.g. standard and ``pgd-at`` at ``eps``; same init, same epochs), draw each
    one's ticket at ``sparsity`` (:func:`transfer_ticket`), and fine-tune it on ``target``
    (a class-split name, e.g. ``"fashion-mnist:classes=5-9"``) with every fraction of its
    training data, every fine-tuning (``"st"``, ``"at"``) and seed, for ``steps`` optimizer
    steps each (rounded up to whole epochs); score clean and PGD-``eval_steps`` robust
    accuracy on the target's test set.
    ``pretrained`` skips the pre-training of the sources it names. With ``folder`` every
    finished unit is kept there (``sources/<name>.safetensors``, ``transfers/<unit>.json``)
    and skipped when the call is repeated: a killed run continues where it stopped."""
    tinfo = data_info(target)
    if tinfo.num_classes != data_info(config.dataset).num_classes:
        raise ValueError(
            f"target {target!r} has {tinfo.num_classes} classes and source "
            f"{config.dataset!r} {data_info(config.dataset).num_classes}; expected the same "
            "number (the head is re-initialised but keeps its shape)"
        )
    bad = [f for f in finetunes if f not in FINETUNES]
    if bad:
        raise ValueError(f"finetune {bad[0]!r} is not allowed; expected one of {list(FINETUNES)}")
    root = None if folder is None else Path(folder)
    cache: dict[str, Splits] = {}  # one load per data set (fine-tunings and sources share)

    def splits_of(cfg: TrainConfig) -> Splits:
        key = json.dumps(cfg.to_dict(), sort_keys=True)
        if key not in cache:
            cache[key] = load_splits(cfg)
        return cache[key]

    models: dict[str, nn.Module] = dict(pretrained or {})
    for name, objective in sources.items():
        kept = None if root is None else root / "sources" / f"{name}.safetensors"
        if name in models:
            continue
        if kept is not None and kept.with_suffix(".json").is_file():  # sidecar: written last
            models[name] = load(kept).train()
            continue
        torch.manual_seed(config.seed)
        from sparta import models as zoo

        net = zoo.create(config.model, dataset=data_info(config.dataset), width=config.width)
        models[name] = fit(
            net, config, objective, eps=eps, attack_steps=attack_steps, splits=splits_of(config)
        )
        if kept is not None:
            save(models[name], kept, source=name, objective=objective or "standard")
        log.info("pre-trained the %s source", name)
    rows: list[dict[str, Any]] = []
    jobs = [
        (s, f, ft, seed) for s in sources for f in fractions for ft in finetunes for seed in seeds
    ]
    for source, fraction, finetune, seed in progress.bar(
        jobs, desc="Double-Win transfers", unit="transfer", quiet=quiet
    ):
        unit = (
            None
            if root is None
            else root / "transfers" / f"{source}-{fraction:g}-{finetune}-{seed}.json"
        )
        if unit is not None and unit.is_file():
            rows.append(json.loads(unit.read_text()))
            continue
        ticket = transfer_ticket(models[source], sparsity, seed=seed)
        name = target if fraction >= 1 else f"{target}:fraction={fraction}:seed={seed}"
        cfg = dataclasses.replace(config, dataset=name, seed=seed, best_metric="", early_stop=0)
        splits = splits_of(dataclasses.replace(cfg, epochs=config.epochs))  # epochs: below
        n_train = len(splits.train)
        cfg.epochs = max(1, math.ceil(steps / math.ceil(n_train / cfg.batch_size)))
        tuned = fit(ticket, cfg, FINETUNES[finetune], eps=eps, attack_steps=attack_steps,
                    splits=splits)  # fmt: skip
        test = splits.test
        row = {
            "source": source,
            "fraction": fraction,
            "finetune": finetune,
            "seed": seed,
            "n_train": n_train,
            "epochs": cfg.epochs,
            "sparsity": body_sparsity(tuned),
            **robust_scores(tuned, test, eps, eval_steps, seed),
        }
        log.info("%s", row)
        if unit is not None:
            unit.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(unit, json.dumps(row))
        rows.append(row)
    return DoubleWinResult(rows, models)


def aggregate(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds of ``clean_acc`` and ``robust_acc`` per
    (fraction, finetune, source), sorted by them."""
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["fraction"], r["finetune"], r["source"]), []).append(r)
    out = []
    for (fraction, finetune, source), rs in sorted(groups.items()):
        agg: dict[str, Any] = {"fraction": fraction, "finetune": finetune, "source": source}
        for k in ("clean_acc", "robust_acc"):
            vals = [r[k] for r in rs]
            agg[k] = statistics.mean(vals)
            agg[f"{k}_sd"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        agg["seeds"] = len(rs)
        out.append(agg)
    return out
