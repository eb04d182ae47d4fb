"""``sparta prune``: prune a model with a criterion, a structure and a scope.

Two modes:

* at initialisation (``--model``/``--dataset`` and the usual training flags): the freshly
  initialised model is pruned, then trained with its masks kept;
* after training (``--ckpt RUN``): the checkpoint is loaded, pruned, then fine-tuned for
  ``--epochs`` (default 0: only evaluated).

``summary.json`` holds ``test_acc``, ``pruned_test_acc`` (right after pruning, before any
training), ``sparsity`` (fraction of zeros among the masked parameters; with
``--structure channel`` the fraction of channels removed), ``weight_sparsity`` (fraction of
zero weights), ``kept_params_fraction`` and ``kept_macs_fraction``; ``sparsity.txt`` and
``sparsity.json`` hold the per-layer report.
"""

from __future__ import annotations

import argparse
import inspect
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from torch import nn

from sparta.cli import Command
from sparta.options import Options, option


@dataclass
class PruneOptions(Options):
    """What to prune and how (recorded in config.yaml)."""

    method: str = option("magnitude", "criterion: random magnitude snip grasp synflow taylor")
    sparsity: float = option(0.9, "fraction of the pruned weights set to zero, in [0, 1)")
    structure: str = option("unstructured", "unstructured, nm:N:M, block:b or channel")
    scope: str = option("global", "global, layer (uniform) or erk")
    include: list[str] = option((), "globs of parameter names to prune (default: Linear/Conv)")
    exclude: list[str] = option((), "globs of parameter names to keep dense")
    batches: int = option(0, "batches for data-dependent criteria (0: the criterion's default)")
    rounds: int = option(0, "rounds of an iterative criterion (0: its default, 100 for synflow)")

    def __post_init__(self) -> None:
        from sparta.sparsity.structures import check_scope, parse_structure
        from sparta.sparsity.topk import check_sparsity

        self.include, self.exclude = list(self.include), list(self.exclude)
        check_sparsity(self.sparsity)
        check_scope(self.scope)
        if parse_structure(self.structure).kind != "channel":
            from sparta.sparsity.criteria import criterion

            criterion(self.method)
        for name in ("batches", "rounds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} is not allowed; expected >= 0")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PruneOptions:
        """Build from the command's mixed values, keeping only this class's keys."""
        return cls(**{k: v for k, v in values.items() if k in {f.name for f in fields(cls)}})

    def criterion_options(self, seed: int) -> dict[str, Any]:
        """Keyword options for the criterion: the seed where it takes one, and the
        batches/rounds the user asked for (an error where they do not apply)."""
        from sparta.sparsity.criteria import criterion
        from sparta.sparsity.structures import parse_structure

        if parse_structure(self.structure).kind == "channel":
            return {"seed": seed}  # sparta.sparsity.channels.channel_masks takes a seed
        entry = criterion(self.method)
        accepted = inspect.signature(entry.fn).parameters
        opts: dict[str, Any] = {"seed": seed} if "seed" in accepted else {}
        if self.batches:
            if "batches" not in accepted:
                raise ValueError(f"--batches does not apply to method {self.method!r}")
            opts["batches"] = self.batches
        if self.rounds:
            opts["rounds"] = self.rounds
        return opts


def _check_fit(cfg: Any, opts: PruneOptions, model: nn.Module | None) -> None:
    """Raise ValueError if include/exclude/structure do not fit the model."""
    import torch

    from sparta import data as sdata
    from sparta import models
    from sparta.sparsity.pruning import check_prunable
    from sparta.sparsity.structures import parse_structure

    if parse_structure(opts.structure).kind == "channel":
        return
    if model is None:
        with torch.random.fork_rng(devices=[]):  # leave the seeded init untouched
            info = sdata.info(cfg.dataset)
            model = models.create(cfg.model, dataset=info, width=cfg.width)
    check_prunable(model, opts.structure, opts.include or None, opts.exclude)


@dataclass
class PruneSource(Options):
    """Prune a trained checkpoint instead of a freshly initialised model."""

    ckpt: str = option("", "prune this run folder or checkpoint instead of a new model")


class Prune(Command):
    name = "prune"
    help = "prune a model at init (then train) or after training"
    resumable = True

    @classmethod
    def option_types(cls) -> tuple[type, ...]:
        from sparta.train import TrainConfig

        return (PruneSource, TrainConfig, PruneOptions)

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.model: nn.Module | None = None
        ckpt = self.get(PruneSource).ckpt
        if ckpt:
            self.model = self._load(ckpt)

    def _load(self, ckpt: str) -> nn.Module:
        """The checkpoint's model; the training config starts from its run's (unless
        resuming: the recorded config is already resolved), with epochs 0 by default."""
        from sparta.cli import config_from_args
        from sparta.runs import Run, run_folder_of
        from sparta.train import TrainConfig
        from sparta.train.config import read_yaml

        model, _, _ = Run.from_checkpoint(ckpt, splits="none")
        if self.resume_dir is not None:
            return model
        base: dict[str, Any] = {}
        folder = Path(ckpt) if Path(ckpt).is_dir() else None
        if folder is not None and folder == run_folder_of(ckpt):
            known = TrainConfig.__dataclass_fields__
            base = {k: v for k, v in read_yaml(folder / "config.yaml").items() if k in known}
        file_values = read_yaml(self.args.config) if self.args.config else {}
        spec = model.sparta_spec
        base.update({k: v for k, v in file_values.items() if k in TrainConfig.__dataclass_fields__})
        base.update(
            dataset=spec["dataset"]["name"], model=spec["name"], width=spec.get("width", 1.0)
        )
        if "epochs" not in vars(self.args) and "epochs" not in file_values:
            base["epochs"] = 0
        self._opts[TrainConfig] = config_from_args(TrainConfig, self.args, base)
        return model

    def config(self) -> dict[str, Any]:
        from sparta.train import TrainConfig

        ckpt = self.get(PruneSource).ckpt
        return {
            **self.get(TrainConfig).to_dict(),
            **self.get(PruneOptions).to_dict(),
            "ckpt": ckpt or None,
        }

    def validate(self) -> None:
        from sparta.commands.train import check_names
        from sparta.train import TrainConfig

        cfg, opts = self.get(TrainConfig), self.get(PruneOptions)
        check_names(cfg)
        _check_fit(cfg, opts, self.model)
        super().validate()

    def run(self) -> int:
        import torch

        from sparta import models
        from sparta.io import atomic_write_text, save, write_json
        from sparta.sparsity.pruning import prune
        from sparta.sparsity.report import format_report, report
        from sparta.sparsity.structures import parse_structure
        from sparta.train import TrainConfig, evaluate, load_splits, train

        cfg, opts, model = self.get(TrainConfig), self.get(PruneOptions), self.model
        torch.manual_seed(cfg.seed)
        splits = load_splits(cfg)
        if model is None:  # the same initialisation as `sparta train` with this seed
            model = models.create(cfg.model, dataset=splits.train.info, width=cfg.width)
        model = model.to(cfg.device)
        start = time.perf_counter()
        handle = prune(
            model,
            opts.method,
            opts.sparsity,
            opts.structure,
            opts.scope,
            data=splits.train,
            include=opts.include or None,
            exclude=opts.exclude,
            **opts.criterion_options(cfg.seed),
        )
        prune_time = time.perf_counter() - start
        pruned = evaluate(model, splits.test, cfg.eval_batch_size)  # before any fine-tuning
        config = self.config()
        extra = {k: v for k, v in config.items() if k not in TrainConfig.__dataclass_fields__}
        path = self.location(config)
        if cfg.epochs > 0:
            result = train(
                cfg,
                root=path.parent,
                name=path.name,
                resume=bool(self.args.resume),
                overwrite=self.args.overwrite,
                quiet=self.quiet,
                model=model,
                callbacks=[handle.callback()],
                extra_config=extra,
                command="prune",
            )
            run_, summary = result.run, dict(result.summary)
        else:
            run_ = self.create_run(config)
            test = evaluate(model, splits.test, cfg.eval_batch_size)
            summary = {"test_acc": test["acc"], "test_loss": test["loss"], "epochs": 0}
            save(model, run_.file("model.safetensors"), test_acc=test["acc"])
        assert run_ is not None
        rep = report(model)
        channels = parse_structure(opts.structure).kind == "channel"
        summary.update(
            # with channel pruning, `sparsity` is the fraction of channels removed and
            # `weight_sparsity` the resulting fraction of zero weights
            sparsity=handle.channel_sparsity() if channels else handle.sparsity(),
            weight_sparsity=handle.weight_sparsity(),
            pruned_test_acc=pruned["acc"],
            kept_params_fraction=rep["global"]["kept_params_fraction"],
            kept_macs_fraction=rep["global"].get("kept_macs_fraction", 1.0),
            prune_time_s=prune_time,
        )
        run_.write_summary(summary)
        table = format_report(rep)
        atomic_write_text(run_.file("sparsity.txt"), table + "\n")
        write_json(run_.file("sparsity.json"), rep)
        print(table)
        print(
            f"test_acc={summary['test_acc']:.4f} (after pruning, before training: "
            f"{summary['pruned_test_acc']:.4f}) sparsity={summary['sparsity']:.4f} "
            f"weight_sparsity={summary['weight_sparsity']:.4f} "
            f"kept_macs={summary['kept_macs_fraction']:.4f} ({opts.method}, {opts.structure}, "
            f"{opts.scope}; {cfg.model} on {cfg.dataset}, {cfg.epochs} epochs)"
        )
        print(f"run: {run_.path}")
        return 0


def register(sub: argparse._SubParsersAction) -> None:
    Prune.register(sub)
