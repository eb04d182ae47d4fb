"""``sparta card``: score a dense model and its sparse variants on every pillar."""

from __future__ import annotations

import argparse
from typing import Any

from sparta.cli import Command, UsageError
from sparta.experiments.card import CardOptions
from sparta.experiments.card.engine import FREE_OPTIONS


class Card(Command):
    """The card's folder holds the options that change numbers (``recorded_options``);
    ``--resume`` may change only the others (variants, sparsities, pillars, ...): finished
    cells are reused, so an ``--override`` of a recorded option would mix two cards."""

    name = "card"
    help = "report card: variants x sparsities x pillars, cached and resumable"
    options = (CardOptions,)
    resumable = True
    free_on_resume = FREE_OPTIONS

    def __init__(self, args: argparse.Namespace) -> None:
        if getattr(args, "override", ""):
            raise UsageError(
                f"--override {args.override} is not allowed with sparta card: its cached cells "
                "would mix two cards; use --name for a new card"
            )
        super().__init__(args)
        self._resolved: CardOptions | None = None

    def resolved(self) -> CardOptions:
        """The options with canonical names, checked against the registries and the data."""
        from sparta.experiments.card.engine import resolve_options

        if self._resolved is None:
            self._resolved = resolve_options(self.get(CardOptions))
        return self._resolved

    def config(self) -> dict[str, Any]:
        from sparta.experiments.card.engine import recorded_options

        return recorded_options(self.resolved())

    def run(self) -> int:
        from sparta.experiments.card import card
        from sparta.report.card import format_table, write_card

        res = card(self.resolved(), run=self.create_run(self.config()), quiet=self.quiet)
        res.files.update(write_card(res.card, res.folder))
        print(format_table(res.card))
        for w in res.card["warnings"]:
            print(f"warning: {w}")
        print(f"cells computed: {len(res.computed)}, reused: {len(res.skipped)}")
        print(f"card: {res.files['card.html']}")
        return 0


def register(sub: argparse._SubParsersAction) -> None:
    Card.register(sub)
