"""Anytime Progressive Pruning (APP; Misra, Runwal, Chen, Wang & Rish, arXiv 2204.01640).

Anytime learning at macroscale (ALMA, the paper's setting): the training data arrive as a
sequence of ``k`` mega-batches (:func:`sparta.data.megabatches`, a seeded disjoint split);
after each one the learner trains (warm-started from its previous weights: anytime) and is
evaluated, so the test accuracy after every mega-batch is an *anytime curve*. With replay
(the reference code's default) mega-batch ``i`` trains on every mega-batch seen so far.

APP prunes progressively as the mega-batches arrive: before training on
mega-batch ``i`` the model is pruned (nested in its current masks) to
:func:`sparta.sparsity.schedules.app_sparsities`'s ``s_i``, reaching the target at the last
mega-batch. The paper's baselines train on the same stream: ``dense`` (never pruned) and
``oneshot`` ("Anytime OSP": pruned once, at the target sparsity, before the first
mega-batch). The reference code prunes with SNIP over the whole network (``--pruner snip
--scope global``), the defaults here. Each mega-batch trains with a fresh learning-rate
schedule ("LR reset to 0.1 after each state" in the reference code).

:func:`progressive` is the loop; :func:`run_anytime` runs it for APP and its baselines with
a run folder where every (branch, mega-batch) is a resumable unit::

    <run>/config.yaml  summary.json  metrics.jsonl   (sparta.report: anytime.md, anytime.png)
    <run>/<branch>/mb_XX/   checkpoints/, model.safetensors, summary.json

A unit with a ``summary.json`` is finished and skipped on re-run; a unit killed mid-way
resumes from its newest epoch checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparta import models
from sparta.data import ImageDataset, megabatches
from sparta.data.splits import concat
from sparta.io import read_checkpoint, restore_model, save
from sparta.options import Options, option, require
from sparta.runs import DEFAULT_ROOT, Run
from sparta.sparsity.allocation import DISTRIBUTIONS, check_distribution
from sparta.sparsity.handle import SparsityHandle
from sparta.sparsity.masks import masks_of
from sparta.sparsity.pruning import prune
from sparta.sparsity.schedules import app_sparsities, current_sparsity
from sparta.train import Callback, TrainConfig, Trainer, evaluate, load_splits

log = logging.getLogger(__name__)

BRANCHES = ("app", "oneshot", "dense")


def branch_sparsities(branch: str, k: int, target: float) -> list[float]:
    """The sparsity before each of ``k`` mega-batches: APP's progressive schedule, the
    one-shot baseline's target from the first mega-batch on, or the dense baseline's 0."""
    if branch == "app":
        return app_sparsities(k, target)
    if branch == "oneshot":
        return [float(target)] * k
    if branch == "dense":
        return [0.0] * k
    raise ValueError(f"branch {branch!r} is not known; allowed: {', '.join(BRANCHES)}")


def prune_to(
    model: nn.Module,
    sparsity: float,
    data: ImageDataset,
    method: str = "snip",
    distribution: str = "global",
) -> None:
    """Prune ``model`` to ``sparsity`` (nested in its masks); nothing when it is already there
    (within one weight) or ``sparsity`` is 0."""
    if sparsity <= 0.0:
        return
    masks = masks_of(model)
    total = sum(m.numel() for m in masks.values())
    if masks and current_sparsity(model) >= sparsity - 1.0 / max(total, 1):
        return
    prune(model, method=method, sparsity=sparsity, distribution=distribution, data=data)


def progressive(
    model: nn.Module,
    parts: Sequence[ImageDataset],
    sparsities: Sequence[float],
    fit: Callable[[nn.Module, ImageDataset, int], None],
    *,
    method: str = "snip",
    distribution: str = "global",
    replay: bool = True,
) -> Iterator[tuple[int, nn.Module]]:
    """For each mega-batch ``i`` of ``parts``: prune ``model`` to ``sparsities[i]`` on the data
    of that step, then ``fit(model, data, i)`` (in place, keeping the masks: train with
    ``SparsityHandle(model).callback()``); yields ``(i, model)`` after each.

    ``data`` is every mega-batch so far with ``replay``, else mega-batch ``i`` alone.
    """
    if len(sparsities) != len(parts):
        raise ValueError(f"{len(sparsities)} sparsities for {len(parts)} mega-batches")
    for i in range(len(parts)):
        data = concat(list(parts[: i + 1])) if replay else parts[i]
        prune_to(model, sparsities[i], data, method, distribution)
        fit(model, data, i)
        yield i, model


@dataclass
class AnytimeConfig(Options):
    """Options of anytime progressive pruning (their fields are the CLI flags)."""

    megabatches: int = option(8, "mega-batches the training set arrives in (seeded split)")
    sparsity: float = option(0.8, "target sparsity, reached at the last mega-batch")
    method: str = option("snip", "pruning criterion (snip, magnitude, ...)")
    distribution: str = option("global", "global, uniform or erk", choices=DISTRIBUTIONS)
    replay: bool = option(True, "train on every mega-batch so far (False: the newest only)")
    baselines: str = option("oneshot,dense", "baselines on the same stream: oneshot,dense or none")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad value and what is allowed."""
        require(self.megabatches >= 1, "megabatches", self.megabatches, "an integer >= 1")
        require(0 < self.sparsity < 1, "sparsity", self.sparsity, "a number in (0, 1)")
        check_distribution(self.distribution)
        from sparta.sparsity.criteria import criterion

        criterion(self.method)
        self.branches  # noqa: B018 - validates the names

    @property
    def branches(self) -> tuple[str, ...]:
        """``app`` and the baselines asked for, in canonical order."""
        names = [b.strip() for b in self.baselines.split(",") if b.strip()]
        if names in ([], ["none"]):
            names = []
        bad = [b for b in names if b not in BRANCHES[1:]]
        if bad:
            raise ValueError(
                f"baselines={self.baselines!r} is not allowed; expected oneshot, dense "
                "(comma-separated) or none"
            )
        return ("app", *(b for b in BRANCHES[1:] if b in names))


@dataclass
class AnytimeResult:
    """``curves``: branch -> one ``{megabatch, n_train, sparsity, test_acc}`` per mega-batch."""

    curves: dict[str, list[dict[str, Any]]]
    run: Run
    summary: dict[str, Any]
    model: nn.Module


def _unit(
    folder: Path,
    model: nn.Module,
    data: ImageDataset,
    cfg: TrainConfig,
    val: ImageDataset | None,
    test: ImageDataset,
    callbacks: Sequence[Callback],
    quiet: bool,
) -> dict[str, Any]:
    """Train ``model`` on ``data`` in the unit ``folder`` (resuming it), or read it back when
    it is finished; returns the unit's summary."""
    done = folder / "summary.json"
    if done.is_file():
        restore_model(model, *read_checkpoint(folder / "model.safetensors"))
        return json.loads(done.read_text())
    run = Run.create(
        cfg.to_dict(), "anytime-unit", root=folder.parent, name=folder.name, resume=True
    )
    trainer = Trainer(
        model,
        data,
        cfg,
        val_data=val,
        callbacks=[SparsityHandle(model).callback(), *callbacks],
        run=run,
        quiet=quiet,
    )
    trainer.fit(resume=True)
    test_res = evaluate(trainer.model, test, cfg.eval_batch_size, trainer.device)
    summary = {
        "test_acc": test_res["acc"],
        "test_loss": test_res["loss"],
        "sparsity": current_sparsity(model),
        "n_train": len(data),
        "epochs": trainer.epoch,
    }
    if trainer.history and "val_acc" in trainer.history[-1]:
        summary["val_acc"] = trainer.history[-1]["val_acc"]
    save(trainer.model, run.file("model.safetensors"), test_acc=test_res["acc"])
    run.write_summary(summary)  # written last: marks the unit finished
    return summary


def run_anytime(
    config: TrainConfig,
    options: AnytimeConfig,
    *,
    root: str | os.PathLike = DEFAULT_ROOT,
    name: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[Callback] = (),
    quiet: bool = True,
) -> AnytimeResult:
    """APP and its baselines on one seeded stream of ``options.megabatches`` mega-batches of
    ``config``'s training set, each mega-batch trained for ``config.epochs``; the test set is
    evaluated after every mega-batch. Returns the curves and APP's final model."""
    from sparta import progress

    splits = load_splits(config)
    k = options.megabatches
    if k > len(splits.train):
        raise ValueError(
            f"megabatches={k} is not allowed; expected at most the {len(splits.train)} "
            "training samples"
        )
    parts = megabatches(splits.train, k, seed=config.seed)
    full = {**config.to_dict(), **options.to_dict()}
    run = Run.open(full, "anytime", root, name, resume, overwrite, allowed=("baselines",))
    curves: dict[str, list[dict[str, Any]]] = {}
    final: nn.Module | None = None
    bar = progress.bar(total=k * len(options.branches), desc="anytime", quiet=quiet)
    for branch in options.branches:
        torch.manual_seed(config.seed)  # every branch starts from the same init
        model = models.create(config.model, dataset=splits.train.info, width=config.width)
        rows: list[dict[str, Any]] = []

        def fit(
            m: nn.Module, data: ImageDataset, i: int, branch: str = branch, rows: list = rows
        ) -> None:
            folder = run.path / branch / f"mb_{i + 1:02d}"
            res = _unit(folder, m, data, config, splits.val, splits.test, callbacks, quiet)
            row = {"megabatch": i + 1, **{key: res[key] for key in ("n_train", "sparsity")}}
            rows.append({**row, "test_acc": res["test_acc"]})
            run.log({"branch": branch, **rows[-1]})
            bar.update(1)

        for _ in progressive(
            model,
            parts,
            branch_sparsities(branch, k, options.sparsity),
            fit,
            method=options.method,
            distribution=options.distribution,
            replay=options.replay,
        ):
            pass
        curves[branch] = rows
        if branch == "app":
            final = model
    bar.close()
    run.write_summary(anytime_summary(curves))
    assert final is not None
    return AnytimeResult(curves, run, json.loads(run.file("summary.json").read_text()), final)


def anytime_summary(curves: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Final figures: APP's last ``test_acc`` and ``sparsity``, its mean test accuracy over
    the mega-batches (``anytime_acc``) and cumulative error rate (``cer``, the sum of the test
    errors after each mega-batch, the paper's CER), and the same per baseline."""
    out: dict[str, Any] = {"curves": curves}
    for branch, rows in curves.items():
        prefix = "" if branch == "app" else f"{branch}_"
        accs = [r["test_acc"] for r in rows]
        out[f"{prefix}test_acc"] = accs[-1]
        out[f"{prefix}anytime_acc"] = sum(accs) / len(accs)
        out[f"{prefix}cer"] = sum(1.0 - a for a in accs)
        out[f"{prefix}sparsity"] = rows[-1]["sparsity"]
    return out
