"""Typed training hyper-parameters: the one source of CLI flags, defaults and help text."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import yaml

from sparta.options import Options, option, require

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle")


@dataclass
class TrainConfig(Options):
    """Everything that determines a training run (and so its name and its weights)."""

    dataset: str = option("fashion-mnist", "dataset name (see `sparta datasets`)")
    model: str = option("lenet300", "model name (see `sparta models`)")
    width: float = option(1.0, "width multiplier of the model")
    epochs: int = option(10, "training epochs")
    batch_size: int = option(128, "global batch size (split across processes)")
    optimizer: str = option("sgd", "optimizer", choices=OPTIMIZERS)
    lr: float = option(0.1, "peak learning rate")
    momentum: float = option(0.9, "SGD momentum (Adam beta1 is left at its default)")
    nesterov: bool = option(False, "Nesterov momentum for SGD")
    weight_decay: float = option(5e-4, "weight decay (decoupled for adamw)")
    schedule: str = option("cosine", "learning-rate schedule", choices=SCHEDULES)
    warmup_epochs: float = option(0.0, "linear warm-up length in epochs (may be fractional)")
    milestones: list[float] = option((), "epochs at which the step schedule multiplies by gamma")
    gamma: float = option(0.1, "step schedule factor")
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy")
    grad_clip: float = option(0.0, "clip the gradient norm to this value (0: off)")
    augment: str = option("none", "batch augmentations, e.g. 'crop:4,flip' or 'none'")
    val_fraction: float = option(0.1, "held-out share of the training set for validation")
    train_subset: int = option(0, "train on this many samples only (0: all)")
    test_subset: int = option(0, "evaluate on this many test samples only (0: all)")
    eval_batch_size: int = option(1000, "batch size for evaluation")
    best_metric: str = option("val_acc", "metric that picks best.safetensors ('' to disable)")
    early_stop: int = option(0, "stop after this many epochs without a better best_metric (0: off)")
    seed: int = option(0, "seed for init, split, shuffling and augmentation")
    device: str = option("cpu", "device: cpu, cuda, cuda:1, ...")
    amp: bool = option(False, "automatic mixed precision (GPU)")
    compile: bool = option(False, "torch.compile the model")
    tensorboard: bool = option(False, "also log to TensorBoard (if installed)")
    keep_checkpoints: int = option(2, "how many epoch checkpoints to keep (>=1)")

    def __post_init__(self) -> None:
        self.milestones = [float(m) for m in self.milestones]
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad value and what is allowed."""
        require(self.epochs >= 0, "epochs", self.epochs, "an integer >= 0")
        require(self.batch_size > 0, "batch_size", self.batch_size, "an integer > 0")
        require(self.eval_batch_size > 0, "eval_batch_size", self.eval_batch_size, "an integer > 0")
        require(self.lr > 0, "lr", self.lr, "a number > 0")
        require(self.width > 0, "width", self.width, "a number > 0")
        require(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, f"one of {OPTIMIZERS}")
        require(self.schedule in SCHEDULES, "schedule", self.schedule, f"one of {SCHEDULES}")
        require(0 <= self.momentum < 1, "momentum", self.momentum, "a number in [0, 1)")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "a number >= 0")
        require(self.warmup_epochs >= 0, "warmup_epochs", self.warmup_epochs, "a number >= 0")
        require(0 <= self.label_smoothing < 1, "label_smoothing", self.label_smoothing, "[0, 1)")
        require(self.grad_clip >= 0, "grad_clip", self.grad_clip, "a number >= 0")
        require(0 <= self.val_fraction < 1, "val_fraction", self.val_fraction, "a number in [0, 1)")
        require(self.train_subset >= 0, "train_subset", self.train_subset, "an integer >= 0")
        require(self.test_subset >= 0, "test_subset", self.test_subset, "an integer >= 0")
        require(self.early_stop >= 0, "early_stop", self.early_stop, "an integer >= 0")
        require(self.keep_checkpoints >= 1, "keep_checkpoints", self.keep_checkpoints, ">= 1")


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
