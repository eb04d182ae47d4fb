"""``train(config)``: data, model, run folder and fit loop put together, as the CLI runs it."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sparta import data as sdata
from sparta import models
from sparta.io import save
from sparta.runs import DEFAULT_ROOT, Run
from sparta.train.callbacks import BestCheckpoint, Callback, EarlyStopping, TensorBoardLogger
from sparta.train.config import TrainConfig
from sparta.train.distributed import device_for, setup
from sparta.train.evaluate import evaluate
from sparta.train.loop import Trainer
from sparta.train.objectives import Objective

log = logging.getLogger(__name__)


@dataclass
class Splits:
    train: sdata.ImageDataset
    val: sdata.ImageDataset | None
    test: sdata.ImageDataset


def load_splits(cfg: TrainConfig) -> Splits:
    """Train/validation (held out of the training set by seed) and test sets of ``cfg``."""
    full = sdata.load(cfg.dataset, "train")
    test = sdata.load(cfg.dataset, "test")
    if cfg.train_subset:
        full = full.take(min(cfg.train_subset, len(full)), seed=cfg.seed)
    if cfg.test_subset:
        test = test.take(min(cfg.test_subset, len(test)), seed=cfg.seed)
    if cfg.val_fraction > 0:
        train, val = sdata.train_val_split(full, val_fraction=cfg.val_fraction, seed=cfg.seed)
    else:
        train, val = full, None
    return Splits(train, val, test)


def _adapted(splits: Splits) -> Splits:
    """``splits`` whose parts may be any dataset or DataLoader of ``(x, y)``, as ImageDatasets
    (validation and test carry the training part's metadata)."""
    train = sdata.as_dataset(splits.train)
    val = None if splits.val is None else sdata.as_dataset(splits.val, split="val", info=train.info)
    return Splits(train, val, sdata.as_dataset(splits.test, split="test", info=train.info))


_PER_EPOCH_ONLY = ("epoch", "step", "lr", "epoch_time_s")


@dataclass
class TrainResult:
    model: nn.Module
    run: Run | None
    summary: dict[str, Any]
    history: list[dict[str, Any]]


def train(
    config: TrainConfig | dict[str, Any],
    *,
    root: str | os.PathLike = DEFAULT_ROOT,
    name: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    model: nn.Module | None = None,
    objective: Objective | None = None,
    callbacks: Sequence[Callback] = (),
    extra_config: dict[str, Any] | None = None,
    quiet: bool = False,
    write_run: bool = True,
    splits: Splits | None = None,
    command: str = "train",
) -> TrainResult:
    """Train ``config.model`` on ``config.dataset`` and write a run folder.

    ``model`` replaces the registry model (e.g. an already masked one); ``objective`` and
    ``callbacks`` plug other pillars in; ``extra_config`` is recorded in config.yaml and
    the run name (options of those pillars); ``splits`` replaces ``load_splits(config)``
    (e.g. a poisoned training set, rebuilt from the recorded options); ``command`` is the
    command recorded in config.yaml (``prune`` when it fine-tunes). Returns the model
    (best weights are kept in ``best.safetensors``; the returned model holds the final
    ones), the run and summary.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    dist = setup(cfg.device)
    device = device_for(cfg.device, dist)
    torch.manual_seed(cfg.seed)
    splits = load_splits(cfg) if splits is None else _adapted(splits)
    if model is None:
        model = models.create(cfg.model, dataset=splits.train.info, width=cfg.width)
    full_config = {**cfg.to_dict(), **(extra_config or {})}
    run = None
    if write_run and dist.is_main:
        run = Run.create(
            full_config, command, root=root, name=name, resume=resume, overwrite=overwrite
        )
    elif write_run:  # other ranks only need the path, to read checkpoints on resume
        from sparta.runs import config_hash

        run = _ReadOnlyRun(os.path.join(root, name or f"{command}-{config_hash(full_config)}"))
    cbs = list(callbacks)
    if cfg.best_metric and splits.val is not None:
        cbs.append(BestCheckpoint(cfg.best_metric))
    if cfg.early_stop:
        cbs.append(EarlyStopping(cfg.best_metric or "val_acc", cfg.early_stop))
    if cfg.tensorboard and run is not None and dist.is_main:
        cbs.append(TensorBoardLogger(str(run.file("tensorboard"))))
    trainer = Trainer(
        model,
        splits.train,
        cfg,
        val_data=splits.val,
        objective=objective,
        callbacks=cbs,
        run=run,
        dist_info=dist,
        device=device,
        quiet=quiet,
    )
    start = time.perf_counter()
    history = trainer.fit(resume=resume and run is not None)
    test = evaluate(trainer.model, splits.test, cfg.eval_batch_size, device)
    summary = {
        "test_acc": test["acc"],
        "test_loss": test["loss"],
        "epochs": trainer.epoch,
        "steps": trainer.step,
        "train_time_s": time.perf_counter() - start,
        "params": models.count_params(trainer.model),
        "nonzero_params": models.count_nonzero(trainer.model),
        "n_train": len(splits.train),
        "n_val": len(splits.val) if splits.val is not None else 0,
        "n_test": len(splits.test),
    }
    if history:
        last = history[-1]
        # the last epoch's figures (callbacks add theirs, e.g. sparsity or val_robust_acc)
        summary.update({k: v for k, v in last.items() if k not in _PER_EPOCH_ONLY})
    best = next((cb for cb in cbs if isinstance(cb, BestCheckpoint)), None)
    if best is not None and best.best_epoch >= 0:
        summary.update({f"best_{best.metric}": best.best, "best_epoch": best.best_epoch})
    if run is not None and dist.is_main:
        save(
            trainer.model, run.file("model.safetensors"), epoch=trainer.epoch, test_acc=test["acc"]
        )
        run.write_summary(summary)
    return TrainResult(trainer.model, run, summary, history)


class _ReadOnlyRun(Run):
    """A run folder seen by a non-writing rank."""

    def log(self, record: dict[str, Any]) -> None:  # pragma: no cover - never called
        pass
