"""``sparta anytime``: anytime progressive pruning (APP) on a stream of mega-batches, with the
dense and one-shot baselines on the same stream.

Writes ``summary.json`` (``curves``: test accuracy after each mega-batch per branch;
``test_acc``, ``anytime_acc``, ``cer`` and ``sparsity`` of APP, the same with ``dense_`` and
``oneshot_`` prefixes), ``anytime.md`` and ``anytime.png`` (the anytime curves).
"""

from __future__ import annotations

import argparse

from sparta.cli import Command


class Anytime(Command):
    name = "anytime"
    help = "anytime progressive pruning (APP) on a stream of mega-batches"
    resumable = True

    @classmethod
    def option_types(cls) -> tuple[type, ...]:
        from sparta.sparsity.anytime import AnytimeConfig
        from sparta.train import TrainConfig

        return (TrainConfig, AnytimeConfig)

    def validate(self) -> None:
        from sparta.commands.train import check_names
        from sparta.train import TrainConfig

        check_names(self.get(TrainConfig))
        super().validate()

    def run(self) -> int:
        from sparta.report import plot_run
        from sparta.sparsity.anytime import AnytimeConfig, run_anytime
        from sparta.train import TrainConfig

        cfg, options = self.get(TrainConfig), self.get(AnytimeConfig)
        path = self.location(self.config())
        result = run_anytime(
            cfg,
            options,
            root=path.parent,
            name=path.name,
            resume=bool(self.args.resume),
            overwrite=self.args.overwrite,
            quiet=self.quiet,
        )
        plot_run(result.run.path)  # anytime.md, anytime.png
        print(result.run.file("anytime.md").read_text(), end="")
        s = result.summary
        line = f"APP: test_acc={s['test_acc']:.4f} at sparsity {s['sparsity']:.3f}"
        for b in ("oneshot", "dense"):
            if f"{b}_test_acc" in s:
                line += f"; {b} {s[f'{b}_test_acc']:.4f}"
        print(f"{line} (mean over mega-batches {s['anytime_acc']:.4f}, CER {s['cer']:.3f})")
        print(f"run: {result.run.path}")
        print(f"plot: {result.run.file('anytime.png')}")
        return 0


def register(sub: argparse._SubParsersAction) -> None:
    Anytime.register(sub)
