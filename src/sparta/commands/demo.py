"""``sparta demo``: the main job, LeNet-300-100 on real Fashion-MNIST."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

from sparta.cli import Command
from sparta.options import Options, option, require


@dataclass
class DemoOptions(Options):
    """How long the demo trains."""

    epochs: int = option(20, "training epochs")

    def __post_init__(self) -> None:
        require(self.epochs >= 0, "epochs", self.epochs, "an integer >= 0")


class Demo(Command):
    name = "demo"
    help = "the main job: LeNet-300-100 on Fashion-MNIST"
    options = (DemoOptions,)
    folder = "none"  # `sparta train` writes (and, being a demo, replaces) runs/demo-<dataset>

    @classmethod
    def add_arguments(cls, p: argparse.ArgumentParser) -> None:
        p.add_argument("--out", default="runs", help="folder that holds run folders")

    def run(self) -> int:
        """Train on Fashion-MNIST, or on the bundled digits when Fashion-MNIST is absent."""
        from sparta import data as sdata
        from sparta.cli import build_parser

        found = {row["name"]: row for row in sdata.available()}
        dataset = "fashion-mnist"
        if not found["fashion-mnist"]["found"]:
            logging.getLogger("sparta").warning(
                "Fashion-MNIST not found (searched %s); install it with "
                "'apt-get install dataset-fashion-mnist'. Falling back to the bundled digits set.",
                ", ".join(map(str, found["fashion-mnist"].get("searched", []))),
            )
            dataset = "digits"
        flags = f"--dataset {dataset} --model lenet300 --lr 0.05 --batch-size 128 --overwrite"
        argv = ["train", *flags.split(), "--epochs", str(self.get(DemoOptions).epochs)]
        argv += ["--name", f"demo-{dataset}", "--out", self.args.out]
        train_args = build_parser().parse_args(["--quiet", *argv] if self.quiet else argv)
        return int(train_args.func(train_args))


def register(sub: argparse._SubParsersAction) -> None:
    Demo.register(sub)
