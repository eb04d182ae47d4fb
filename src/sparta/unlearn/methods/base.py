"""The method registry and the one runner every method shares.

A method is one small function ``prepare(model, setting, options, base) -> Plan``
registered with :func:`register_method`; the plan says what the fit loop trains on
(``data``), what it minimises (``objective``) and what else happens each step
(``callbacks``). :func:`run_method` hands the plan to :class:`sparta.train.Trainer`, so no
method writes its own loop. Masks already on the model (``--prune``, a pruned checkpoint)
are kept: pruned weights stay exactly zero through unlearning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sparta.data import ImageDataset
from sparta.registry import Registry, canonical
from sparta.train import Callback, Objective, TrainConfig, Trainer
from sparta.train.masks import MaskCallback, masks_of
from sparta.unlearn.options import UnlearnOptions
from sparta.unlearn.settings import Setting


@dataclass
class Plan:
    """What one method trains: data, objective, extra callbacks; optionally a new model
    (Retrain) or a whole config (Retrain uses the original training's)."""

    data: ImageDataset
    objective: Objective | None = None
    callbacks: list[Callback] = field(default_factory=list)
    model: nn.Module | None = None
    config: TrainConfig | None = None
    info: dict[str, Any] = field(default_factory=dict)


Prepare = Callable[[nn.Module, Setting, UnlearnOptions, TrainConfig], Plan]


@dataclass(frozen=True)
class Method:
    """A registered unlearning method with its default epochs and learning rate."""

    name: str
    prepare: Prepare
    epochs: int
    lr: float
    summary: str


#: every unlearning method's ``prepare`` by name; ``meta['method']`` is its :class:`Method`
UNLEARN: Registry[Prepare] = Registry(
    "unlearn", populate="sparta.unlearn.methods", label="unlearning method"
)


def register_method(
    name: str,
    epochs: int = 10,
    lr: float = 0.01,
    summary: str = "",
    aliases: tuple[str, ...] = (),
) -> Callable[[Prepare], Prepare]:
    """Register ``prepare`` as method ``name`` with its paper defaults."""

    def deco(fn: Prepare) -> Prepare:
        summary_ = summary or (fn.__doc__ or "").split("\n")[0]
        method = Method(canonical(name), fn, epochs, lr, summary_)
        UNLEARN.add(name, fn, aliases=aliases, method=method, summary=summary_)
        return fn

    return deco


def method_names() -> list[str]:
    """Registered method names, Retrain first."""
    return sorted(UNLEARN.names(), key=lambda n: (n != "retrain", n))


def get_method(name: str) -> Method:
    """The method registered as ``name``; an unknown name lists the known ones."""
    return UNLEARN.get(name).meta["method"]


def run_method(
    model: nn.Module,
    setting: Setting,
    method: str,
    options: UnlearnOptions,
    base: TrainConfig,
    quiet: bool = True,
) -> tuple[nn.Module, Plan, list[dict[str, Any]]]:
    """Unlearn in place with ``method``; returns the model (new for Retrain), plan, history."""
    m = get_method(method)
    torch.manual_seed(options.seed)
    plan = m.prepare(model, setting, options, base)
    model = plan.model if plan.model is not None else model
    config = plan.config or options.train_config(m.epochs, m.lr)
    callbacks: list[Callback] = [MaskCallback()] if masks_of(model) else []
    callbacks += plan.callbacks
    trainer = Trainer(
        model,
        plan.data,
        config,
        objective=plan.objective,
        callbacks=callbacks,
        device=options.device,
        quiet=quiet,
    )
    history = trainer.fit() if config.epochs > 0 else []
    return trainer.model, plan, history
