"""``sparta train --supermask S``: edge-popup (1911.13299), a supermask of a random network.

Edge-popup is training, not one-shot pruning: the scores are trained with the usual loop
(optimizer, cosine schedule, epochs, checkpoints, ``--resume``), only no weight moves. So it
is an option of ``sparta train`` (the model's weights are redrawn as the paper's and frozen,
and the model is wrapped in a :class:`~sparta.sparsity.scores.ScoredModel`), and every
``sparta train`` flag applies to the scores (the paper: ``--lr 0.1 --weight-decay 1e-4``,
SGD with momentum, cosine). The run's ``model.safetensors`` loads (``sparta.load``, ``--ckpt``)
as the masked model: the top-k subnetwork, pruned weights exactly zero.

Registered as a :class:`~sparta.commands.train.TrainExtension`; importing this module adds
the flags to ``sparta train``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sparta.commands.train import EXTENSIONS, TrainExtension, TrainPlan
from sparta.options import Options, option, require
from sparta.sparsity.supermask import BIASES, WEIGHT_INITS

SUPERMASK_DISTRIBUTIONS = ("uniform", "global")


@dataclass
class SupermaskOptions(Options):
    """Edge-popup options of ``sparta train`` (recorded in config.yaml)."""

    supermask: float = option(
        0.0, "edge-popup: train only a mask of this sparsity over frozen random weights (0: off)"
    )
    supermask_weights: str = option(
        "kaiming-normal", "edge-popup's frozen weights", choices=WEIGHT_INITS
    )
    supermask_bias: str = option("zero", "biases of the masked layers", choices=BIASES)
    supermask_distribution: str = option(
        "uniform",
        "the same sparsity per layer (paper) or one global ranking",
        choices=SUPERMASK_DISTRIBUTIONS,
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad value and what is allowed."""
        require(0 <= self.supermask < 1, "supermask", self.supermask, "a number in [0, 1)")
        require(
            self.supermask_weights in WEIGHT_INITS,
            "supermask_weights",
            self.supermask_weights,
            f"one of {WEIGHT_INITS}",
        )
        require(self.supermask_bias in BIASES, "supermask_bias", self.supermask_bias, str(BIASES))
        require(
            self.supermask_distribution in SUPERMASK_DISTRIBUTIONS,
            "supermask_distribution",
            self.supermask_distribution,
            f"one of {SUPERMASK_DISTRIBUTIONS}",
        )
        if self.supermask == 0:
            for f in fields(self)[1:]:
                value = getattr(self, f.name)
                require(value == f.default, f.name, value, f"{f.default!r} without --supermask")


def active(opts: SupermaskOptions) -> bool:
    return opts.supermask > 0


def setup(opts: SupermaskOptions, plan: TrainPlan, cfg: Any, splits: Any) -> None:
    """Redraw and freeze ``plan.model``'s weights and wrap it so that only scores train."""
    from sparta.sparsity.masks import masks_of
    from sparta.sparsity.supermask import SupermaskMetrics, supermask
    from sparta.train.masks import MaskCallback

    if masks_of(plan.model) or any(isinstance(cb, MaskCallback) for cb in plan.callbacks):
        raise ValueError(
            f"--supermask {opts.supermask} does not combine with --sparsity/--dst/--gmp/"
            "--prune-method (edge-popup chooses its own mask)"
        )
    plan.model = supermask(
        plan.model,
        opts.supermask,
        weights=opts.supermask_weights,
        bias=opts.supermask_bias,
        distribution=opts.supermask_distribution,
        seed=cfg.seed,
    )
    plan.callbacks.append(SupermaskMetrics(plan.model))


EXTENSIONS.append(TrainExtension(options=SupermaskOptions, active=active, setup=setup))
