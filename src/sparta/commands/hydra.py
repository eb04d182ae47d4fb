"""``sparta hydra``: prune a robustly pre-trained checkpoint with HYDRA and fine-tune it.

HYDRA (Sehwag et al. 2020, arXiv 2002.10509, §3) is pre-train, prune, fine-tune. The
pre-training is ``sparta train`` with a robust objective (``--adv pgd``, ``--cert ibp``,
``--noise-sigma``); this command runs the other two on its checkpoint: ``--score-epochs`` of
score learning with the weights frozen (``--score-lr``, HYDRA 0.1), then ``--epochs`` of
fine-tuning the kept weights at ``--lr`` (HYDRA 0.01, the default here), both under
``--objective`` (pgd-at, trades, ibp, gaussian or standard). It is a command of its own, not a
``sparta prune --method``: prune's methods are one-shot criteria, and HYDRA's two phases each
have their own epochs, learning rate and a robust objective.

``summary.json``: ``test_acc`` (after fine-tuning), ``pruned_test_acc`` (after the score
phase, before fine-tuning), ``sparsity``, ``score_time_s`` and the training figures. A killed
run continues with ``--resume`` in the phase it was in.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from sparta.cli import Command
from sparta.options import Options, option


@dataclass
class HydraSource(Options):
    """The robustly pre-trained model HYDRA prunes."""

    ckpt: str = option("", "run folder or checkpoint of the pre-trained model", required=True)


class Hydra(Command):
    name = "hydra"
    help = "HYDRA: learn which weights to keep under a robust objective, then fine-tune"
    resumable = True

    @classmethod
    def option_types(cls) -> tuple[type, ...]:
        from sparta.sparsity.hydra import HydraOptions
        from sparta.train import TrainConfig

        return (HydraSource, TrainConfig, HydraOptions)

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.model = self._load(self.get(HydraSource).ckpt)

    def _load(self, ckpt: str) -> nn.Module:
        """The checkpoint's model; the fine-tune config starts from its run's data settings
        with HYDRA's fine-tune lr (0.01) unless given (on resume the recorded config holds)."""
        from sparta.cli import config_from_args
        from sparta.runs import Run, run_folder_of
        from sparta.sparsity.hydra import FINETUNE_LR
        from sparta.train import TrainConfig
        from sparta.train.config import read_yaml

        model, _, _ = Run.from_checkpoint(ckpt, splits="none")
        if self.resume_dir is not None:
            return model
        known = TrainConfig.__dataclass_fields__
        base: dict[str, Any] = {"lr": FINETUNE_LR}
        folder = run_folder_of(ckpt)
        if folder is not None and (folder / "config.yaml").is_file():
            recorded = read_yaml(folder / "config.yaml")
            data_keys = ("batch_size", "val_fraction", "train_subset", "test_subset", "seed")
            base.update({k: recorded[k] for k in data_keys if k in recorded})
        file_values = read_yaml(self.args.config) if self.args.config else {}
        base.update({k: v for k, v in file_values.items() if k in known})
        spec = model.sparta_spec
        base.update(
            dataset=spec["dataset"]["name"], model=spec["name"], width=spec.get("width", 1.0)
        )
        self._opts[TrainConfig] = config_from_args(TrainConfig, self.args, base)
        return model

    def validate(self) -> None:
        from sparta.sparsity.hydra import HydraOptions
        from sparta.sparsity.pruning import check_prunable

        check_prunable(self.model, "unstructured", None, ())
        self.get(HydraOptions).create_objective(0)  # a registered objective, valid options
        super().validate()

    def run(self) -> int:
        import torch

        from sparta.sparsity.hydra import HydraOptions, hydra
        from sparta.train import TrainConfig

        cfg, opts = self.get(TrainConfig), self.get(HydraOptions)
        torch.manual_seed(cfg.seed)
        path: Path = self.location(self.config())
        result = hydra(
            self.model.to(cfg.device),
            cfg,
            opts,
            root=path.parent,
            name=path.name,
            resume=bool(self.args.resume),
            overwrite=self.args.overwrite,
            quiet=self.quiet,
            extra_config={"ckpt": self.get(HydraSource).ckpt},
        )
        s = result.summary
        print(
            f"test_acc={s['test_acc']:.4f} (after the score phase, before fine-tuning: "
            f"{s['pruned_test_acc']:.4f}) sparsity={s['sparsity']:.4f} ({opts.objective}; "
            f"{opts.score_epochs} score + {cfg.epochs} fine-tune epochs; {cfg.model} on "
            f"{cfg.dataset})"
        )
        assert result.run is not None
        print(f"run: {result.run.path}")
        return 0


def register(sub: argparse._SubParsersAction) -> None:
    Hydra.register(sub)
