"""``sparta train --zo cge|rge``: DeepZero (2310.02025), training from loss values only.

Every step estimates the gradient from forward passes (sparse CGE with ZO-GraSP ratios,
feature reuse and batched forwards by default; see :mod:`sparta.train.deepzero`) and hands it
to the usual optimizer, so every ``sparta train`` flag keeps its meaning (the paper: SGD,
``--lr 0.1``, momentum 0.9, cosine). Under ``torchrun`` the queries of a step, not the batch,
are split over the processes. Each step's exact query count is logged in metrics.jsonl.

Registered as a :class:`~sparta.commands.train.TrainExtension`; importing this module adds
the flags to ``sparta train``.
"""

from __future__ import annotations

from typing import Any

from sparta.commands.train import EXTENSIONS, TrainExtension, TrainPlan
from sparta.train.deepzero import DeepZero, ZOOptions


def active(opts: ZOOptions) -> bool:
    return bool(opts.zo)


def setup(opts: ZOOptions, plan: TrainPlan, cfg: Any, splits: Any) -> None:
    """Make the run's objective the zeroth-order one."""
    if plan.objective is not None:
        raise ValueError(
            f"--zo {opts.zo} sets the training objective and does not combine with another "
            "objective (--adv, --cert, --noise-sigma); expected only one of them"
        )
    if cfg.amp:
        raise ValueError("--amp is not allowed with --zo (no backward pass to scale)")
    plan.objective = DeepZero.from_options(opts, cfg.label_smoothing, cfg.seed)


EXTENSIONS.append(TrainExtension(options=ZOOptions, active=active, setup=setup))
