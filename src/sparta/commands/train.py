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

from sparta.cli import Command


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
    "sparta.commands.pixelfly_train",  # first: the others' masks and wrappers see its layers
    "sparta.commands.sparse_train",
    "sparta.commands.adv_train",
    "sparta.commands.cert_train",
    "sparta.commands.poison_train",
    "sparta.commands.supermask_train",
    "sparta.commands.zo_train",
    "sparta.commands.denoise_train",
)


def check_names(cfg: Any) -> None:
    """Raise ValueError for an unknown dataset, model or augmentation of a TrainConfig, or a
    model that does not fit the dataset: before any data is loaded or folder created."""
    import torch

    from sparta import data as sdata
    from sparta import models
    from sparta.data.adapt import is_import_path
    from sparta.data.augment import parse_augment

    info = sdata.info(cfg.dataset)
    if not is_import_path(cfg.model):  # a user's `pkg.module:make_net` is built below
        models.entry(cfg.model)
    parse_augment(cfg.augment)
    with torch.random.fork_rng(devices=[]):  # leave the seeded init untouched
        models.create(cfg.model, dataset=info, width=cfg.width)


class Train(Command):
    name = "train"
    help = "train a model and write a run folder"
    resumable = True

    @classmethod
    def option_types(cls) -> tuple[type, ...]:
        from sparta.train import TrainConfig

        for module in EXTENSION_MODULES:
            importlib.import_module(module)
        return (TrainConfig, *(ext.options for ext in EXTENSIONS))

    def config(self) -> dict[str, Any]:
        """The training config and the options of the active extensions only."""
        from sparta.train import TrainConfig

        out = self.get(TrainConfig).to_dict()
        for ext in EXTENSIONS:
            opts = self.get(ext.options)
            if ext.active(opts):
                out.update(opts.to_dict())
        return out

    def validate(self) -> None:
        from sparta.train import TrainConfig

        check_names(self.get(TrainConfig))
        super().validate()

    def run(self) -> int:
        from sparta import models
        from sparta.report import plot_learning_curves
        from sparta.train import TrainConfig, load_splits, train

        cfg = self.get(TrainConfig)
        extra: dict[str, Any] = {}
        plan = None
        splits = None
        for ext in EXTENSIONS:
            opts = self.get(ext.options)
            if not ext.active(opts):
                continue
            extra.update(opts.to_dict())
            if plan is None:
                import torch

                torch.manual_seed(cfg.seed)
                splits = load_splits(cfg)
                plan = TrainPlan(
                    models.create(cfg.model, dataset=splits.train.info, width=cfg.width)
                )
            ext.setup(opts, plan, cfg, splits)
        path = self.location(self.config())
        result = train(
            cfg,
            root=path.parent,
            name=path.name,
            resume=bool(self.args.resume),
            overwrite=self.args.overwrite,
            quiet=self.quiet,
            model=plan.model if plan else None,
            callbacks=plan.callbacks if plan else (),
            objective=plan.objective if plan else None,
            extra_config=extra,
            splits=splits,
        )
        if result.run is None:
            return 0
        import torch.distributed as tdist

        # only the writing rank plots: another may finish before metrics.jsonl is complete
        main = not (tdist.is_available() and tdist.is_initialized() and tdist.get_rank() > 0)
        plot = plot_learning_curves(result.run.path) if result.history and main else None
        s = result.summary
        print(
            f"test_acc={s['test_acc']:.4f} ({cfg.model} on {cfg.dataset}, {s['epochs']} epochs, "
            f"{s['train_time_s']:.1f}s)"
        )
        print(f"run: {result.run.path}")
        if plot is not None:
            print(f"plot: {plot}")
        return 0


def register(sub: argparse._SubParsersAction) -> None:
    Train.register(sub)
