"""Typed unlearning hyper-parameters: the one source of CLI flags, defaults and help text.

Defaults follow the seed papers' code (2304.04934 "Unlearn-Sparse" and 2310.12508 "SalUn"):
SGD with momentum 0.9, weight decay 5e-4, batch 256 and a constant learning rate (their
step milestones at epochs 91/136 are never reached in 10 unlearning epochs). ``epochs``
and ``lr`` left at 0 take each method's own default (see ``sparta.unlearn.methods``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sparta.options import Options, option
from sparta.train import TrainConfig

SCOPES = ("global", "layer", "erk")


@dataclass
class UnlearnOptions(Options):
    """How to unlearn (the method and the forget set are chosen separately)."""

    epochs: int = option(0, "unlearning epochs (0: the method's default)")
    lr: float = option(0.0, "unlearning learning rate (0: the method's default)")
    batch_size: int = option(256, "unlearning batch size")
    momentum: float = option(0.9, "SGD momentum")
    weight_decay: float = option(5e-4, "weight decay")
    retrain_epochs: int = option(0, "Retrain epochs (0: those of the original training)")
    saliency: float = option(0.5, "SalUn: share of weights updated (top |grad| of the forget loss)")
    l1_gamma: float = option(5e-5, "l1-sparse: initial weight of the l1 penalty")
    no_l1_epochs: int = option(0, "l1-sparse: final epochs without the l1 penalty")
    prune_scope: str = option("global", "--prune: global, layer or erk magnitude ranking")
    prune_finetune: int = option(
        0, "--prune: epochs on the full training set after pruning, before unlearning"
    )
    mia_max: int = option(5000, "MIA: at most this many members and non-members (0: all)")
    seed: int = option(0, "seed for the forget set, shuffling, random labels and Retrain's init")
    device: str = option("cpu", "device: cpu, cuda, ...")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad value and what is allowed."""
        checks = [
            (self.epochs >= 0, "epochs", "an integer >= 0"),
            (self.lr >= 0, "lr", "a number >= 0"),
            (self.batch_size > 0, "batch_size", "an integer > 0"),
            (0 <= self.momentum < 1, "momentum", "a number in [0, 1)"),
            (self.weight_decay >= 0, "weight_decay", "a number >= 0"),
            (self.retrain_epochs >= 0, "retrain_epochs", "an integer >= 0"),
            (0 < self.saliency <= 1, "saliency", "a number in (0, 1]"),
            (self.l1_gamma >= 0, "l1_gamma", "a number >= 0"),
            (self.no_l1_epochs >= 0, "no_l1_epochs", "an integer >= 0"),
            (self.prune_scope in SCOPES, "prune_scope", f"one of {SCOPES}"),
            (self.prune_finetune >= 0, "prune_finetune", "an integer >= 0"),
            (self.mia_max >= 0, "mia_max", "an integer >= 0"),
        ]
        for ok, name, allowed in checks:
            if not ok:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is not allowed; expected {allowed}"
                )

    def recipe(self, base: TrainConfig, epochs: int) -> TrainConfig:
        """The original training's recipe ``base`` for ``epochs`` epochs on all the data it
        is given (no validation split, no early stopping), with this seed and device."""
        return dataclasses.replace(
            base,
            epochs=epochs,
            seed=self.seed,
            device=self.device,
            val_fraction=0.0,
            best_metric="",
            early_stop=0,
            tensorboard=False,
        )

    def train_config(self, epochs: int, lr: float) -> TrainConfig:
        """The fit-loop config of an unlearning method (its defaults unless overridden)."""
        return TrainConfig(
            epochs=self.epochs or epochs,
            lr=self.lr or lr,
            batch_size=self.batch_size,
            optimizer="sgd",
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            schedule="constant",
            val_fraction=0.0,
            best_metric="",
            seed=self.seed,
            device=self.device,
        )
