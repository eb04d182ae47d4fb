"""``sparta pool``: Lottery Pools on an existing lottery run folder (no retraining).

The target ticket (default: the last level) is interpolated greedily with its neighbouring
levels' tickets, coefficients chosen on the run's validation split, the target's mask kept
(:mod:`sparta.sparsity.pools`). Writes ``model.safetensors`` (the pooled ticket),
``summary.json`` (``test_acc`` against ``target_test_acc``, ``val_acc``, the accepted
``[level, coefficient]`` pairs), ``metrics.jsonl`` (every try) and the resumable search state.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from sparta.cli import Command
from sparta.options import Options, option


@dataclass
class PoolSource(Options):
    """The lottery run whose tickets are pooled."""

    ckpt: str = option("", "lottery run folder (written by `sparta lottery`)", required=True)


def print_pool(res: object) -> None:
    """The pooled ticket against the target ticket, one line each, and the run folder."""
    s = res.summary  # type: ignore[attr-defined]
    accepted = ", ".join(f"level {lv} at {a:g}" for lv, a in s["accepted"]) or "none"
    print(
        f"level {s['target_level']} ticket ({100 * s['remaining']:.2f}% weights remaining): "
        f"val_acc={s['target_val_acc']:.4f} test_acc={s['target_test_acc']:.4f}"
    )
    print(
        f"lottery pool (accepted: {accepted}): val_acc={s['val_acc']:.4f} "
        f"test_acc={s['test_acc']:.4f} ({100 * (s['test_acc'] - s['target_test_acc']):+.2f} "
        "points)"
    )
    print(f"run: {res.run.path}")  # type: ignore[attr-defined]


class Pool(Command):
    name = "pool"
    help = "Lottery Pools: interpolate a lottery run's ticket with its neighbours (no training)"
    resumable = True

    @classmethod
    def option_types(cls) -> tuple[type, ...]:
        from sparta.sparsity.pools import PoolConfig

        return (PoolSource, PoolConfig)

    def validate(self) -> None:
        from sparta.sparsity.pools import lottery_levels

        lottery_levels(self.get(PoolSource).ckpt)  # a lottery run folder with >= 2 tickets
        super().validate()

    def run(self) -> int:
        from sparta.sparsity.pools import PoolConfig, pool_run

        path = self.location(self.config())
        res = pool_run(
            self.get(PoolSource).ckpt,
            self.get(PoolConfig),
            root=path.parent,
            name=path.name,
            resume=bool(self.args.resume),
            overwrite=self.args.overwrite,
            quiet=self.quiet,
        )
        print_pool(res)
        return 0


def register(sub: argparse._SubParsersAction) -> None:
    Pool.register(sub)
