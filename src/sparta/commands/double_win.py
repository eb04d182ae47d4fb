"""``sparta double-win``: Double-Win lottery tickets (Chen et al. 2022, arXiv 2206.04762).

Pre-trains the source model (``--dataset``, e.g. ``fashion-mnist:classes=0-4``) with standard
training and with PGD-AT, draws each one's ticket by one-shot magnitude pruning of the
pre-trained body (``--sparsity``), and fine-tunes both tickets on ``--target`` (e.g.
``fashion-mnist:classes=5-9``) with every ``--fractions`` of its training data, standard (st)
and adversarial (at) fine-tuning, ``--seeds`` seeds, ``--steps`` optimizer steps each. Writes
``summary.json`` (``rows``, ``aggregate``: clean and robust accuracy per regime) and
``double_win.md``; ``--resume`` skips the finished sources and transfers.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from sparta.checks import check_eps
from sparta.cli import Command
from sparta.options import Options, option, require


@dataclass
class DoubleWinOptions(Options):
    """The transfer side of ``sparta double-win`` (the source is ``--dataset``)."""

    target: str = option("fashion-mnist:classes=5-9", "downstream dataset (same class count)")
    sparsity: float = option(0.8, "fraction of the body's weights pruned one-shot (OMP)")
    fractions: str = option("0.01,0.1,1", "shares of the target's training data, comma-separated")
    finetunes: str = option("st,at", "downstream fine-tuning: st (standard), at (PGD-AT)")
    steps: int = option(500, "optimizer steps of every fine-tuning (whole epochs), any share")
    eps: float = option(0.1, "Linf eps of PGD-AT (source and fine-tuning) and of the attack")
    adv_steps: int = option(5, "PGD steps while training adversarially")
    eval_steps: int = option(20, "PGD steps of the robust-accuracy evaluation")
    seeds: int = option(1, "seeds per regime (a seed draws the data share and the head)")

    def __post_init__(self) -> None:
        self.validate()

    @property
    def fraction_list(self) -> list[float]:
        try:
            values = [float(f) for f in self.fractions.split(",")]
        except ValueError:
            values = []
        if not values or not all(0 < f <= 1 for f in values):
            raise ValueError(
                f"fractions={self.fractions!r} is not allowed; expected numbers in (0, 1], "
                "comma-separated"
            )
        return values

    @property
    def finetune_list(self) -> list[str]:
        from sparta.experiments.double_win import FINETUNES

        names = [f.strip() for f in self.finetunes.split(",") if f.strip()]
        bad = [f for f in names if f not in FINETUNES] or ([] if names else [""])
        if bad:
            raise ValueError(
                f"finetunes={self.finetunes!r} is not allowed; expected some of "
                f"{', '.join(FINETUNES)}, comma-separated"
            )
        return names

    def validate(self) -> None:
        """Raise ValueError naming the first bad value and what is allowed."""
        require(0 < self.sparsity < 1, "sparsity", self.sparsity, "a number in (0, 1)")
        self.fraction_list  # noqa: B018 - validates
        self.finetune_list  # noqa: B018 - validates
        check_eps(self.eps)
        for name in ("steps", "adv_steps", "eval_steps", "seeds"):
            require(getattr(self, name) >= 1, name, getattr(self, name), "an integer >= 1")


class DoubleWin(Command):
    name = "double-win"
    help = "Double-Win tickets: tickets of a robust vs a standard source, transferred"
    resumable = True

    @classmethod
    def option_types(cls) -> tuple[type, ...]:
        from sparta.train import TrainConfig

        return (TrainConfig, DoubleWinOptions)

    def validate(self) -> None:
        from sparta import data as sdata
        from sparta.commands.train import check_names
        from sparta.train import TrainConfig

        cfg, opts = self.get(TrainConfig), self.get(DoubleWinOptions)
        check_names(cfg)
        source, target = sdata.info(cfg.dataset), sdata.info(opts.target)
        if source.num_classes != target.num_classes:
            raise ValueError(
                f"target={opts.target!r} has {target.num_classes} classes, the source "
                f"{cfg.dataset!r} {source.num_classes}; expected the same number"
            )
        super().validate()

    def run(self) -> int:
        from sparta.experiments.double_win import aggregate, double_win
        from sparta.train import TrainConfig

        cfg, o = self.get(TrainConfig), self.get(DoubleWinOptions)
        run = self.create_run(self.config())
        res = double_win(
            cfg,
            target=o.target,
            sparsity=o.sparsity,
            fractions=o.fraction_list,
            finetunes=o.finetune_list,
            steps=o.steps,
            eps=o.eps,
            attack_steps=o.adv_steps,
            eval_steps=o.eval_steps,
            seeds=range(cfg.seed, cfg.seed + o.seeds),
            folder=run.path,
            quiet=self.quiet,
        )
        agg = aggregate(res.rows)
        table = _table(agg, o.eval_steps)
        (run.path / "double_win.md").write_text(table)
        run.write_summary({"rows": res.rows, "aggregate": agg, "sparsity": o.sparsity})
        print(table, end="")
        print(f"run: {run.path}")
        return 0


def _table(agg: list[dict[str, Any]], eval_steps: int) -> str:
    lines = [
        f"| target data | fine-tune | source | clean acc | robust acc (PGD-{eval_steps}) |",
        "|---:|---|---|---:|---:|",
    ]
    for a in agg:
        lines.append(
            f"| {100 * a['fraction']:g}% | {a['finetune'].upper()} | {a['source']} | "
            f"{a['clean_acc']:.4f} +- {a['clean_acc_sd']:.4f} | "
            f"{a['robust_acc']:.4f} +- {a['robust_acc_sd']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def register(sub: argparse._SubParsersAction) -> None:
    DoubleWin.register(sub)
