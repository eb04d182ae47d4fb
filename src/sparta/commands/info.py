"""``sparta datasets`` and ``sparta models``: what is available (``sparta list datasets``
and ``sparta list models`` under their old names)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from sparta.cli import Command
from sparta.commands.list import show
from sparta.options import Options, option


class Datasets(Command):
    name = "datasets"
    help = "list datasets and where their files were found"
    folder = "none"

    def run(self) -> int:
        show("datasets")
        return 0


@dataclass
class ModelsOptions(Options):
    """Which models to count, on which dataset's input shape."""

    pattern: str = option("*", "glob filter, e.g. 'resnet*'", positional=True)
    dataset: str = option("fashion-mnist", "dataset whose shape to count for")


class Models(Command):
    name = "models"
    help = "list models with parameter and MAC counts"
    options = (ModelsOptions,)
    folder = "none"

    def run(self) -> int:
        opts = self.get(ModelsOptions)
        show("models", opts.pattern, opts.dataset)
        return 0


def register(sub: argparse._SubParsersAction) -> None:
    Datasets.register(sub)
    Models.register(sub)
