"""``sparta lottery``: iterative magnitude pruning with rewinding (lottery tickets).

Writes ``summary.json`` (``levels``, ``test_acc`` of the last ticket, ``sparsity``), a
markdown table ``levels.md`` and ``levels.png`` (test accuracy vs % weights remaining).
"""

from __future__ import annotations

import argparse

from sparta.cli import Command


class Lottery(Command):
    name = "lottery"
    help = "lottery tickets: iterative magnitude pruning + rewinding"
    resumable = True

    @classmethod
    def option_types(cls) -> tuple[type, ...]:
        from sparta.sparsity.lottery import LotteryConfig
        from sparta.train import TrainConfig

        return (TrainConfig, LotteryConfig)

    @classmethod
    def add_arguments(cls, p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--rewind",
            dest="rewind_step",
            type=int,
            default=argparse.SUPPRESS,
            help="same as --rewind-step: 0 rewinds to the init, k to step k of the dense run",
        )
        p.add_argument(
            "--pool",
            action="store_true",
            default=False,
            help="then Lottery Pools on the last ticket (default options; written to "
            "<run>/pool-lXX; `sparta pool --ckpt <run>` for others)",
        )

    def validate(self) -> None:
        from sparta.commands.train import check_names
        from sparta.train import TrainConfig

        check_names(self.get(TrainConfig))
        super().validate()

    def run(self) -> int:
        from sparta.sparsity.lottery import LotteryConfig, run_lottery
        from sparta.train import TrainConfig

        cfg, options = self.get(TrainConfig), self.get(LotteryConfig)
        path = self.location(self.config())
        result = run_lottery(
            cfg,
            options,
            root=path.parent,
            name=path.name,
            resume=bool(self.args.resume),
            overwrite=self.args.overwrite,
            quiet=self.quiet,
        )
        from sparta.report import plot_run

        plot_run(result.run.path)  # levels.md, levels.png
        print(result.run.file("levels.md").read_text(), end="")
        s = result.summary
        print(
            f"test_acc={s['test_acc']:.4f} at {100 * s['remaining']:.2f}% weights remaining "
            f"(dense {s['dense_test_acc']:.4f}; {cfg.model} on {cfg.dataset})"
        )
        print(f"run: {result.run.path}")
        print(f"plot: {result.run.file('levels.png')}")
        if self.args.pool:
            from sparta.commands.pool import print_pool
            from sparta.sparsity.pools import pool_run

            last = result.levels[-1]["level"]
            res = pool_run(
                result.run.path, root=result.run.path, name=f"pool-l{last:02d}", resume=True
            )
            print_pool(res)
        return 0


def register(sub: argparse._SubParsersAction) -> None:
    Lottery.register(sub)
