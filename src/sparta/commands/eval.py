"""``sparta eval``: accuracy of a checkpoint or run folder.

With ``--ckpt RUN`` (or a file inside a run folder) and no ``--name``, the evaluation is
recorded inside the model's folder: ``RUN/evals/eval-<hash>/`` (config.yaml, summary.json).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from sparta.cli import CheckpointOptions, Command
from sparta.options import Options, option, require


@dataclass
class EvalOptions(Options):
    """How much to evaluate."""

    subset: int = option(0, "evaluate on this many samples only (0: all)")
    batch_size: int = option(1000, "evaluation batch size")

    def __post_init__(self) -> None:
        require(self.subset >= 0, "subset", self.subset, "an integer >= 0")
        require(self.batch_size > 0, "batch_size", self.batch_size, "an integer > 0")


class Eval(Command):
    name = "eval"
    help = "accuracy of a checkpoint or run folder"
    options = (CheckpointOptions, EvalOptions)
    folder = "eval"

    def run(self) -> int:
        from sparta.train import evaluate

        src, opts = self.get(CheckpointOptions), self.get(EvalOptions)
        model, dataset = src.load()
        if opts.subset:
            dataset = dataset.take(min(opts.subset, len(dataset)))
        res = evaluate(model, dataset, opts.batch_size)
        run = self.create_run(self.config())
        split = src.split
        summary = {
            f"{split}_acc": res["acc"],
            f"{split}_loss": res["loss"],
            "n": res["n"],
            "dataset": dataset.name,
            "ckpt_file": str(model.sparta_checkpoint["path"]),
        }
        run.write_summary(summary)
        print(f"{split}_acc={res['acc']:.4f} loss={res['loss']:.4f} n={res['n']} ({dataset.name})")
        print(f"run: {run.path}")
        return 0


def register(sub: argparse._SubParsersAction) -> None:
    Eval.register(sub)
