"""Robust and certified lottery tickets: IMP (:func:`sparta.sparsity.lottery.run_lottery`,
the one IMP loop) whose every level, dense and pruned, trains with an adversarial or a
certified objective, rewound as usual.

* :func:`robust_lottery`: every level trains with PGD-AT (Madry et al. 2018) or TRADES at
  ``eps``; the robust ticket is then compared with the dense PGD-AT model's robust accuracy
  and with the random-reinit control (same mask, fresh init).
* :func:`certified_lottery`: every level trains with IBP certified training (Gowal et al.
  2018, arXiv 1810.12715: ``kappa * CE + (1 - kappa) * CE(IBP worst case)``, eps and kappa
  ramped per unit by :class:`~sparta.certify.training.IBPSchedule`), the setting of Li et
  al., "Can pruning improve certified robustness of neural networks?" (arXiv 2206.07311,
  Sec. 3-4), whose tickets match the dense model's standard and verified accuracy.

The same runs are ``sparta lottery --adv pgd-at --eps 0.1`` and ``sparta lottery --cert ibp
--cert-eps 0.1``; these functions are their Python face (and the card's variants).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from sparta.certify.training import (
    KAPPA_END,
    CertifiedValidation,
    IBPSchedule,
    IBPTraining,
)
from sparta.io import load
from sparta.sparsity.lottery import (
    LotteryConfig,
    LotteryResult,
    UnitSetup,
    lottery,
    run_lottery,
)
from sparta.train import Callback, TrainConfig
from sparta.train.api import Splits


def certified_setup(
    eps: float,
    kappa: float = KAPPA_END,
    warmup: str | None = None,
    ramp: str | None = None,
    method: str = "ibp",
    val_n: int = 0,
) -> UnitSetup:
    """A lottery unit setup: a fresh :class:`IBPTraining` objective at ``eps`` for every unit
    with its :class:`IBPSchedule` ramp (``warmup``/``ramp`` like ``"1ep"``; None: Gowal et
    al.'s 1/30 and 1/6 of the unit's training) and, with ``val_n``, ``val_verified_acc`` on
    at most ``val_n`` validation images each epoch."""
    IBPSchedule(IBPTraining(eps, kappa, method), eps, kappa, warmup, ramp)  # checks the values

    def setup(cfg: TrainConfig, splits: Splits) -> tuple[IBPTraining, Sequence[Callback]]:
        objective = IBPTraining(eps, kappa, method)
        callbacks: list[Callback] = [IBPSchedule(objective, eps, kappa, warmup, ramp)]
        if val_n and splits.val is not None and len(splits.val):
            callbacks.append(CertifiedValidation(splits.val, eps, method, n=val_n))
        return objective, callbacks

    return setup


def certified_lottery(
    config: TrainConfig,
    options: LotteryConfig,
    eps: float = 0.1,
    *,
    kappa: float = KAPPA_END,
    warmup: str | None = None,
    ramp: str | None = None,
    val_n: int = 0,
    **run_options: Any,
) -> LotteryResult:
    """IMP with ``options`` whose every unit trains with IBP at ``eps`` (see
    :func:`certified_setup`); ``run_options`` go to :func:`run_lottery` (``root``, ``name``,
    ``resume``, ``callbacks``, ...). The objective is recorded in config.yaml."""
    recorded = {"eps": eps, "kappa": kappa, "warmup": warmup, "ramp": ramp, "val_n": val_n}
    return run_lottery(
        config,
        options,
        setup=certified_setup(eps, kappa, warmup, ramp, val_n=val_n),
        extra_config={"objective": "ibp", "objective_options": recorded},
        **run_options,
    )


def robust_lottery(
    config: TrainConfig,
    eps: float = 0.1,
    steps: int = 10,
    objective: str = "pgd-at",
    **lottery_options: Any,
) -> LotteryResult:
    """IMP whose every unit trains adversarially with ``objective`` (``"pgd-at"`` or
    ``"trades"``) at Linf ``eps`` with ``steps`` attack steps; ``lottery_options`` go to
    :func:`sparta.sparsity.lottery.lottery` (``levels``, ``rate``, ``controls``, ``root``...)."""
    return lottery(
        config, objective=objective, objective_options={"eps": eps, "steps": steps},
        **lottery_options,
    )  # fmt: skip


def unit_model(run: str | os.PathLike, level: int, branch: str = "ticket") -> nn.Module:
    """The trained model of one unit of a lottery run folder (``branch``: ticket, reinit or
    random), masks attached."""
    path = Path(run) / "levels" / f"level_{level:02d}" / branch / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: level {level} / {branch} did not finish")
    return load(path)
