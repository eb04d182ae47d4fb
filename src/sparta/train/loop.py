"""The one fit loop. Objectives say what to minimise; callbacks say what else to do."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from sparta import progress
from sparta.data import ImageDataset, as_dataset, iterate, parse_augment
from sparta.io import (
    latest_checkpoint,
    model_meta,
    read_checkpoint,
    restore_model,
    write_checkpoint,
)
from sparta.runs import Run
from sparta.train.callbacks import Callback
from sparta.train.config import TrainConfig
from sparta.train.distributed import DistInfo
from sparta.train.evaluate import evaluate
from sparta.train.objectives import Objective, create_objective
from sparta.train.schedule import lr_factor

log = logging.getLogger(__name__)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of an epoch's shuffling and augmentation: a pure function, so resuming at
    an epoch boundary replays exactly the batches an uninterrupted run would see."""
    return (seed * 1_000_003 + epoch * 7919 + 12345) % (2**63 - 1)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), Adam or AdamW with the config's weight decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
        )
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


class Trainer:
    """Trains ``model`` on ``train_data``; holds the state callbacks may read or change.

    Attributes callbacks use: ``model`` (the bare module, never a DDP wrapper),
    ``optimizer``, ``config``, ``epoch`` (epochs completed), ``step`` (optimizer steps
    taken), ``total_steps``, ``run`` (the run folder or None), ``should_stop``.
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: ImageDataset,
        config: TrainConfig,
        *,
        val_data: ImageDataset | None = None,
        objective: Objective | None = None,
        callbacks: Sequence[Callback] = (),
        run: Run | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        dist_info: DistInfo | None = None,
        device: torch.device | str | None = None,
        quiet: bool = False,
    ) -> None:
        train_data = as_dataset(train_data)
        if val_data is not None:
            val_data = as_dataset(val_data, split="val", info=train_data.info)
        if len(train_data) == 0:
            raise ValueError("the training set is empty")
        self.config = config
        self.device = torch.device(device or config.device)
        self.model = model.to(self.device)
        self.train_data, self.val_data = train_data, val_data
        self.objective = objective or create_objective(
            "standard", label_smoothing=config.label_smoothing
        )
        #: a zeroth-order objective (DeepZero) fills ``p.grad`` from forward passes itself:
        #: no backward, no DDP, and every rank sees the whole batch (its queries are split)
        self.zeroth_order = bool(getattr(self.objective, "zeroth_order", False))
        self.callbacks = list(callbacks)
        self.run, self.dist = run, dist_info or DistInfo()
        self.optimizer = optimizer or make_optimizer(self.model, config)
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups]
        self.augment = parse_augment(config.augment)
        self.quiet = quiet
        self.epoch = 0
        self.step = 0
        self.should_stop = False
        self.history: list[dict[str, Any]] = []
        per_rank = len(train_data)
        self.steps_per_epoch = math.ceil(per_rank / config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self._forward = self._wrap(self.model)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.amp)
        self._schedule_args = (
            round(config.warmup_epochs * self.steps_per_epoch),
            [round(m * self.steps_per_epoch) for m in config.milestones],
            config.gamma,
        )

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    def _wrap(self, model: nn.Module) -> nn.Module:
        fwd = model
        if self.config.compile:
            fwd = torch.compile(fwd)
        if self.dist.enabled and not self.zeroth_order:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            fwd = DistributedDataParallel(fwd, device_ids=ids)
        return fwd

    @property
    def train_acc_key(self) -> str:
        """``train_robust_acc`` when the objective's logits are at adversarial inputs
        (``objective.robust_logits``), else ``train_acc``."""
        return (
            "train_robust_acc" if getattr(self.objective, "robust_logits", False) else "train_acc"
        )

    # ---------------------------------------------------------------- the loop
    def fit(self, resume: bool = False) -> list[dict[str, Any]]:
        """Train until ``config.epochs`` (or a callback stops it); return the epoch metrics.

        With ``resume``, continue from the newest checkpoint in the run folder.
        """
        if resume:
            self.resume()
        for cb in self.callbacks:
            cb.on_fit_start(self)
        while self.epoch < self.config.epochs and not self.should_stop:
            metrics = self.train_epoch()
            self.end_epoch(metrics)
        for cb in self.callbacks:
            cb.on_fit_end(self)
        return self.history

    def train_epoch(self) -> dict[str, Any]:
        """One pass over the training data; returns the epoch's training metrics."""
        cfg = self.config
        for cb in self.callbacks:
            cb.on_epoch_start(self)
        g = torch.Generator().manual_seed(epoch_seed(cfg.seed, self.epoch))
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        seen = queries = 0
        start = time.perf_counter()
        # ZO training splits a step's queries over the ranks, not its batch
        rank, world = (0, 1) if self.zeroth_order else (self.dist.rank, self.dist.world_size)
        batches = iterate(
            self.train_data.x,
            self.train_data.y,
            cfg.batch_size,
            shuffle=True,
            generator=g,
            rank=rank,
            world_size=world,
        )
        bar = progress.bar(
            batches,
            total=self.steps_per_epoch,
            desc=f"epoch {self.epoch + 1}",
            quiet=self.quiet or not self.is_main,
        )
        n = len(self.train_data)
        for i, (x, y) in enumerate(bar):
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            if self.augment is not None:
                x = self.augment(x, g)
            # DDP averages gradients over ranks; a rank whose share of an uneven global batch
            # differs weighs its loss by that share, so the step equals one process's
            weight = len(y) * world / min(cfg.batch_size, n - i * cfg.batch_size)
            loss, logits = self.train_step(x, y, weight)
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            if self.zeroth_order:
                queries += self.objective.queries
        if not torch.isfinite(loss_sum):
            raise FloatingPointError(
                f"training loss became {float(loss_sum)} in epoch {self.epoch + 1}; lower the "
                f"learning rate (lr={cfg.lr}) or set grad_clip"
            )
        self.epoch += 1
        metrics = {
            "epoch": self.epoch,
            "step": self.step,
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": float(loss_sum) / max(seen, 1),
            # objectives whose logits are those of adversarial inputs (PGD-AT, Fast-AT) say
            # so with ``robust_logits``: their accuracy is the robust training accuracy
            self.train_acc_key: int(correct) / max(seen, 1),
            "epoch_time_s": time.perf_counter() - start,
        }
        if self.zeroth_order:
            metrics.update(queries=queries, total_queries=self.objective.total_queries)
        return metrics

    def train_step(
        self, x: torch.Tensor, y: torch.Tensor, weight: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on a batch: schedule, forward, backward, hooks, step, hooks.

        ``weight`` scales the loss that is back-propagated (not the one returned)."""
        factor = self.lr_factor(self.step)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor
        if self.zeroth_order:
            return self.zo_step(x, y)
        if self.config.amp:
            with torch.autocast(self.device.type):
                loss, logits = self.objective(self._forward, x, y)
        else:
            loss, logits = self.objective(self._forward, x, y)
        self.optimizer.zero_grad(set_to_none=True)
        scaled = loss * weight if weight != 1.0 else loss
        if self.config.amp:
            self.scaler.scale(scaled).backward()
        else:
            scaled.backward()
        for cb in self.callbacks:
            cb.after_backward(self)
        if self.config.grad_clip > 0:
            if self.config.amp:
                self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        if self.config.amp:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.step += 1
        for cb in self.callbacks:
            cb.after_step(self)
        return loss, logits

    def zo_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A zeroth-order step: the objective writes its gradient estimate into ``p.grad``
        from forward passes only, then the usual hooks and optimizer step; the step's exact
        query count goes to metrics.jsonl (one record per step)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.model.train()
        loss, logits = self.objective.step(
            self.model,
            x,
            y,
            epoch=self.epoch,
            step=self.step,
            data=self.train_data,
            dist=self.dist,
        )
        for cb in self.callbacks:
            cb.after_backward(self)
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.step += 1
        if self.run is not None and self.is_main:
            self.run.log(
                {
                    "epoch": self.epoch + 1,
                    "step": self.step,
                    "queries": self.objective.queries,
                    "loss": float(loss),
                }
            )
        for cb in self.callbacks:
            cb.after_step(self)
        return loss, logits

    def schedule_factor(self, step: int, total_steps: int | None = None) -> float:
        """The config's schedule (kind, warm-up, milestones) at ``step`` of a run of
        ``total_steps`` (default: this run's)."""
        total = self.total_steps if total_steps is None else total_steps
        return lr_factor(step, total, self.config.schedule, *self._schedule_args)

    def lr_factor(self, step: int) -> float:
        """The multiplier of the peak learning rate at ``step`` (0-based): the config's
        schedule, then each callback's :meth:`Callback.lr_factor` in list order."""
        factor = self.schedule_factor(step)
        for cb in self.callbacks:
            hook = getattr(cb, "lr_factor", None)  # duck-typed callbacks may lack it
            if hook is not None:
                factor = hook(self, step, factor)
        return factor

    def end_epoch(self, metrics: dict[str, Any]) -> None:
        """Validate, run epoch-end callbacks, log and checkpoint."""
        if self.val_data is not None and len(self.val_data):
            val = evaluate(self.model, self.val_data, self.config.eval_batch_size, self.device)
            metrics.update(val_loss=val["loss"], val_acc=val["acc"])
        for cb in self.callbacks:
            cb.on_epoch_end(self, metrics)
        self.history.append(metrics)
        log.info(
            "epoch %d/%d %s",
            self.epoch,
            self.config.epochs,
            " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float)),
        )
        if self.run is not None and self.is_main:
            self.run.log(metrics)
            self.save_checkpoint()

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> None:
        """Write ``checkpoints/epoch_XXXX.safetensors`` with everything needed to resume."""
        tensors = dict(self.model.state_dict())
        opt = self.optimizer.state_dict()
        opt_meta: dict[str, dict[str, Any]] = {}
        for idx, state in opt["state"].items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optim.{idx}.{key}"] = value
                else:
                    opt_meta.setdefault(str(idx), {})[key] = value
        tensors["rng.torch"] = torch.get_rng_state()
        if torch.cuda.is_available() and self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        meta = {
            **model_meta(self.model),
            "epoch": self.epoch,
            "step": self.step,
            "config": self.config.to_dict(),
            "optimizer": {"param_groups": opt["param_groups"], "state": opt_meta},
            "scaler": self.scaler.state_dict(),
            "callbacks": {
                cb.name: _split_state(cb.state_dict(), f"cb.{cb.name}.", tensors)
                for cb in self.callbacks
            },
            "objective": _split_state(_state_of(self.objective), "cb.objective.", tensors),
            "history": self.history,
        }
        assert self.run is not None
        folder = self.run.checkpoint_dir
        write_checkpoint(folder / f"epoch_{self.epoch:04d}.safetensors", tensors, meta)
        old = sorted(folder.glob("epoch_*.safetensors"))[: -self.config.keep_checkpoints]
        for f in old:
            f.unlink(missing_ok=True)
            f.with_suffix(".json").unlink(missing_ok=True)

    def resume(self) -> bool:
        """Load the newest checkpoint of the run folder; False when there is none."""
        if self.run is None:
            raise ValueError("resume needs a run folder")
        path = latest_checkpoint(self.run.checkpoint_dir)
        if path is None:
            log.info("no checkpoint in %s: starting from scratch", self.run.path)
            return False
        tensors, meta = read_checkpoint(path)
        names = {id(p): n for n, p in self.model.named_parameters()}
        restore_model(self.model, tensors, meta)
        # a model that shrank while training (Chase) is rebuilt with new parameters: the
        # optimizer follows them by name before its state is loaded
        params = dict(self.model.named_parameters())
        for group in self.optimizer.param_groups:
            group["params"] = [params.get(names.get(id(p), ""), p) for p in group["params"]]
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, idx, name = key.split(".", 2)
                state.setdefault(int(idx), {})[name] = value.to(self.device)
        for idx, extra in meta["optimizer"]["state"].items():
            state.setdefault(int(idx), {}).update(extra)
        self.optimizer.load_state_dict(
            {"state": state, "param_groups": meta["optimizer"]["param_groups"]}
        )
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        if meta.get("scaler"):
            self.scaler.load_state_dict(meta["scaler"])
        for cb in self.callbacks:
            if cb.name in meta["callbacks"]:
                cb.load_state_dict(
                    _join_state(meta["callbacks"][cb.name], f"cb.{cb.name}.", tensors)
                )
        load = getattr(self.objective, "load_state_dict", None)
        if meta.get("objective") and callable(load):
            load(_join_state(meta["objective"], "cb.objective.", tensors))
        self.epoch, self.step = meta["epoch"], meta["step"]
        self.history = list(meta.get("history", []))
        if self.is_main:
            self.run.truncate_metrics(lambda r: r.get("epoch", 0) <= self.epoch)
        log.info("resumed %s at epoch %d (step %d)", self.run.path, self.epoch, self.step)
        return True


def _state_of(obj: Any) -> dict[str, Any]:
    """``obj.state_dict()`` when it has one (a stateful objective), else ``{}``."""
    get = getattr(obj, "state_dict", None)
    return get() if callable(get) else {}


def _split_state(
    state: dict[str, Any], prefix: str, tensors: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """Move the tensor values of a callback's (or objective's) state into the checkpoint's
    ``tensors`` under ``prefix + key``; return the JSON part, listing the moved keys."""
    moved = [k for k, v in state.items() if isinstance(v, torch.Tensor)]
    for k in moved:
        tensors[prefix + k] = state[k]
    rest = {k: v for k, v in state.items() if k not in moved}
    return {**rest, "__tensors__": moved} if moved else rest


def _join_state(
    state: dict[str, Any], prefix: str, tensors: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """Inverse of :func:`_split_state`: the JSON part with its tensors put back."""
    moved = state.get("__tensors__", [])
    missing = [k for k in moved if prefix + k not in tensors]
    if missing:
        raise ValueError(f"checkpoint lacks the state tensor {prefix + missing[0]!r}")
    out = {k: v for k, v in state.items() if k != "__tensors__"}
    return {**out, **{k: tensors[prefix + k] for k in moved}}
