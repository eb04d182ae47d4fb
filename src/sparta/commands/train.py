"""``sparta train``: train a model and write a run folder.

Pillars add options to this command through :data:`EXTENSIONS`: each extension has a
dataclass of options (its fields become flags and are recorded in config.yaml) and a
``setup`` that may replace the model and add callbacks or an objective.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from sparta.cli import add_dataclass_flags, add_run_flags, config_from_args


@dataclass
class TrainPlan:
    """What extensions may change before training starts."""

    model: nn.Module
    callbacks: list[Any] = field(default_factory=list)
    objective: Any = None


@dataclass(frozen=True)
class TrainExtension:
    options: type  # a dataclass with from_dict / to_dict, all fields defaulted
    active: Callable[[Any], bool]  # whether the options ask for anything
    setup: Callable[[Any, TrainPlan, Any, Any], None]  # (options, plan, config, splits)


EXTENSIONS: list[TrainExtension] = []
# modules that append to EXTENSIONS when imported, in the order their setups run
EXTENSION_MODULES = (
    "sparta.commands.sparse_train",
    "sparta.commands.adv_train",
    "sparta.commands.cert_train",
    "sparta.commands.poison_train",
)


def register(sub: argparse._SubParsersAction) -> None:
    from sparta.train import TrainConfig

    for module in EXTENSION_MODULES:
        importlib.import_module(module)
    p = sub.add_parser("train", help="train a model and write a run folder")
    add_dataclass_flags(p, TrainConfig)
    for ext in EXTENSIONS:
        add_dataclass_flags(p, ext.options)
    add_run_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sparta import models
    from sparta.report import plot_learning_curves
    from sparta.train import TrainConfig, load_splits, train
    from sparta.train.config import read_yaml

    file_values = read_yaml(args.config) if args.config else {}
    known = set(TrainConfig.__dataclass_fields__).union(
        *(ext.options.__dataclass_fields__ for ext in EXTENSIONS)
    )
    unknown = sorted(set(file_values) - known)
    if unknown:
        raise ValueError(f"unknown config key {unknown[0]!r}; allowed: {', '.join(sorted(known))}")
    cfg = config_from_args(TrainConfig, args, file_values)
    extra: dict[str, Any] = {}
    plan = None
    for ext in EXTENSIONS:
        opts = config_from_args(ext.options, args, file_values)
        if not ext.active(opts):
            continue
        extra.update(opts.to_dict())
        if plan is None:
            import torch

            torch.manual_seed(cfg.seed)
            splits = load_splits(cfg)
            plan = TrainPlan(models.create(cfg.model, dataset=splits.train.info, width=cfg.width))
        ext.setup(opts, plan, cfg, splits)
    result = train(
        cfg,
        root=args.out,
        name=args.name,
        resume=args.resume,
        overwrite=args.overwrite,
        quiet=args.quiet,
        model=plan.model if plan else None,
        callbacks=plan.callbacks if plan else (),
        objective=plan.objective if plan else None,
        extra_config=extra,
        splits=splits if plan else None,
    )
    if result.run is None:
        return 0
    plot = plot_learning_curves(result.run.path)
    s = result.summary
    print(
        f"test_acc={s['test_acc']:.4f} ({cfg.model} on {cfg.dataset}, {s['epochs']} epochs, "
        f"{s['train_time_s']:.1f}s)"
    )
    print(f"run: {result.run.path}")
    print(f"plot: {plot}")
    return 0
