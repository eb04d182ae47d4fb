"""``sparta bip``: BiP, pruning by bi-level optimisation (2210.04092; :mod:`sparta.sparsity.bip`).

A command of its own rather than a ``sparta prune --method``: prune's methods are one-shot
criteria (a score, then training under a fixed mask), while BiP *is* the training loop --
every step moves the weights and the mask together, with its own options (``--score-lr``,
``--ig-gamma``, ``--lower-steps``) -- as ``sparta lottery`` is for IMP. Like ``sparta prune``
it starts from a fresh model (``--model``/``--dataset``) or a trained one (``--ckpt RUN``:
the usual case, and the paper's); ``--epochs`` is the length of the bi-level loop. Epoch
checkpoints hold the weights, the scores and both levels' optimizer state, so a killed run
continues with ``--resume``.

``summary.json``: ``test_acc``, ``sparsity`` (of the weights; with ``--structure channel`` the
fraction of channels removed), ``weight_sparsity``, ``val_acc`` and ``mask_change`` of the
last epoch, ``train_time_s``; ``sparsity.txt``/``sparsity.json``: the per-layer report.
"""

from __future__ import annotations

import argparse
from typing import Any

from sparta.commands.prune import Prune, PruneSource


class BiP(Prune):
    name = "bip"
    help = "BiP: prune by bi-level optimisation (mask scores and weights trained together)"
    resumable = True

    @classmethod
    def option_types(cls) -> tuple[type, ...]:
        from sparta.sparsity.bip import BiPConfig
        from sparta.train import TrainConfig

        return (PruneSource, TrainConfig, BiPConfig)

    def config(self) -> dict[str, Any]:
        from sparta.sparsity.bip import BiPConfig
        from sparta.train import TrainConfig

        ckpt = self.get(PruneSource).ckpt
        return {
            **self.get(TrainConfig).to_dict(),
            **self.get(BiPConfig).to_dict(),
            "ckpt": ckpt or None,
        }

    def validate(self) -> None:
        from sparta.commands.train import check_names
        from sparta.options import require
        from sparta.sparsity.bip import BiPConfig
        from sparta.train import TrainConfig

        cfg, opts = self.get(TrainConfig), self.get(BiPConfig)
        check_names(cfg)
        require(cfg.epochs >= 1, "epochs", cfg.epochs, "an integer >= 1 (BiP's training epochs)")
        if self.model is not None and opts.structure == "channel":
            from sparta.sparsity.groups import channel_groups

            if not channel_groups(self.model):
                raise ValueError(f"structure='channel': {cfg.model} has no prunable channel group")
        super(Prune, self).validate()

    def run(self) -> int:
        from sparta.io import atomic_write_text, write_json
        from sparta.sparsity.bip import BiPConfig, run_bip
        from sparta.sparsity.report import format_report, report
        from sparta.train import TrainConfig

        cfg, opts = self.get(TrainConfig), self.get(BiPConfig)
        path = self.location(self.config())
        run, summary = run_bip(
            cfg,
            opts,
            model=self.model,
            root=path.parent,
            name=path.name,
            resume=bool(self.args.resume),
            overwrite=self.args.overwrite,
            quiet=self.quiet,
            extra_config={"ckpt": self.get(PruneSource).ckpt or None},
        )
        from sparta.io import load

        rep = report(load(run.file("model.safetensors")))
        table = format_report(rep)
        atomic_write_text(run.file("sparsity.txt"), table + "\n")
        write_json(run.file("sparsity.json"), rep)
        print(table)
        print(
            f"test_acc={summary['test_acc']:.4f} sparsity={summary['sparsity']:.4f} "
            f"weight_sparsity={summary['weight_sparsity']:.4f} (BiP, {opts.structure}, "
            f"{opts.scope}; {cfg.model} on {cfg.dataset}, {cfg.epochs} epochs)"
        )
        print(f"run: {run.path}")
        return 0


def register(sub: argparse._SubParsersAction) -> None:
    BiP.register(sub)
