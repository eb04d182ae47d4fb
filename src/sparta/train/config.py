"""Typed training hyper-parameters: the one source of CLI flags, defaults and help text."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle")


def _opt(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    """Everything that determines a training run (and so its name and its weights)."""

    dataset: str = _opt("fashion-mnist", "dataset name (see `sparta datasets`)")
    model: str = _opt("lenet300", "model name (see `sparta models`)")
    width: float = _opt(1.0, "width multiplier of the model")
    epochs: int = _opt(10, "training epochs")
    batch_size: int = _opt(128, "global batch size (split across processes)")
    optimizer: str = _opt("sgd", "optimizer", choices=OPTIMIZERS)
    lr: float = _opt(0.1, "peak learning rate")
    momentum: float = _opt(0.9, "SGD momentum (Adam beta1 is left at its default)")
    nesterov: bool = _opt(False, "Nesterov momentum for SGD")
    weight_decay: float = _opt(5e-4, "weight decay (decoupled for adamw)")
    schedule: str = _opt("cosine", "learning-rate schedule", choices=SCHEDULES)
    warmup_epochs: float = _opt(0.0, "linear warm-up length in epochs (may be fractional)")
    milestones: list[float] = _opt((), "epochs at which the step schedule multiplies by gamma")
    gamma: float = _opt(0.1, "step schedule factor")
    label_smoothing: float = _opt(0.0, "label smoothing of the cross-entropy")
    grad_clip: float = _opt(0.0, "clip the gradient norm to this value (0: off)")
    augment: str = _opt("none", "batch augmentations, e.g. 'crop:4,flip' or 'none'")
    val_fraction: float = _opt(0.1, "held-out share of the training set for validation")
    train_subset: int = _opt(0, "train on this many samples only (0: all)")
    test_subset: int = _opt(0, "evaluate on this many test samples only (0: all)")
    eval_batch_size: int = _opt(1000, "batch size for evaluation")
    best_metric: str = _opt("val_acc", "metric that picks best.safetensors ('' to disable)")
    early_stop: int = _opt(0, "stop after this many epochs without a better best_metric (0: off)")
    seed: int = _opt(0, "seed for init, split, shuffling and augmentation")
    device: str = _opt("cpu", "device: cpu, cuda, cuda:1, ...")
    amp: bool = _opt(False, "automatic mixed precision (GPU)")
    compile: bool = _opt(False, "torch.compile the model")
    tensorboard: bool = _opt(False, "also log to TensorBoard (if installed)")
    keep_checkpoints: int = _opt(2, "how many epoch checkpoints to keep (>=1)")

    def __post_init__(self) -> None:
        self.milestones = [float(m) for m in self.milestones]
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad value and what is allowed."""
        _check(self.epochs >= 0, "epochs", self.epochs, "an integer >= 0")
        _check(self.batch_size > 0, "batch_size", self.batch_size, "an integer > 0")
        _check(self.eval_batch_size > 0, "eval_batch_size", self.eval_batch_size, "an integer > 0")
        _check(self.lr > 0, "lr", self.lr, "a number > 0")
        _check(self.width > 0, "width", self.width, "a number > 0")
        _check(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, f"one of {OPTIMIZERS}")
        _check(self.schedule in SCHEDULES, "schedule", self.schedule, f"one of {SCHEDULES}")
        _check(0 <= self.momentum < 1, "momentum", self.momentum, "a number in [0, 1)")
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "a number >= 0")
        _check(self.warmup_epochs >= 0, "warmup_epochs", self.warmup_epochs, "a number >= 0")
        _check(0 <= self.label_smoothing < 1, "label_smoothing", self.label_smoothing, "[0, 1)")
        _check(self.grad_clip >= 0, "grad_clip", self.grad_clip, "a number >= 0")
        _check(0 <= self.val_fraction < 1, "val_fraction", self.val_fraction, "a number in [0, 1)")
        _check(self.train_subset >= 0, "train_subset", self.train_subset, "an integer >= 0")
        _check(self.test_subset >= 0, "test_subset", self.test_subset, "an integer >= 0")
        _check(self.early_stop >= 0, "early_stop", self.early_stop, "an integer >= 0")
        _check(self.keep_checkpoints >= 1, "keep_checkpoints", self.keep_checkpoints, ">= 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a mapping; unknown keys are an error that lists the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown config key {unknown[0]!r}; allowed: {', '.join(sorted(known))}"
            )
        return cls(**values)


def _check(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{name}={value!r} is not allowed; expected {allowed}")


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML config file into a dict; a missing or malformed file is a clear error."""
    try:
        text = open(path).read()
    except FileNotFoundError:
        raise FileNotFoundError(f"config file not found: {path}") from None
    except OSError as e:
        raise ValueError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(
            f"config file {path} is not valid YAML: {str(e).splitlines()[0]}"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}
