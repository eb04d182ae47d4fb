"""``sparta report RUN [RUN ...]``: one report card page from run folders made one by one."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparta.cli import Command
from sparta.options import Options, option, require


@dataclass
class ReportOptions(Options):
    """The run folders to compare, and how wide the terminal table is."""

    runs: list[str] = field(
        default_factory=list,
        metadata={"help": "run folders to compare", "positional": True, "required": True},
    )
    width: int = option(120, "width of the terminal table")

    def __post_init__(self) -> None:
        self.runs = [str(r) for r in self.runs]
        require(self.width >= 1, "width", self.width, "an integer >= 1")


class Report(Command):
    """Compare runs made one by one (train, prune, attack, certify, unlearn, backdoor, ...)
    on one page without re-running them; each run folder's summary.json (and its
    evals/*/summary.json) gives a row. The folder's default name is ``report-<hash of the
    runs>``."""

    name = "report"
    help = "a report card (card.html, card.json, card.md) from existing run folders"
    options = (ReportOptions,)

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self._card: dict[str, Any] | None = None

    def card(self) -> dict[str, Any]:
        """The card of the runs (every folder is validated before anything is written)."""
        from sparta.report.card import card_from_runs

        if self._card is None:
            self._card = card_from_runs(self.get(ReportOptions).runs)
        return self._card

    def config(self) -> dict[str, Any]:
        """The runs the card reads, resolved: recorded and hashed for the folder name."""
        return {"runs": sorted(str(Path(r).resolve()) for r in self.card()["options"]["runs"])}

    def validate(self) -> None:
        folder = self.location(self.config()).resolve()
        if any(folder == Path(r) for r in self.config()["runs"]):
            raise ValueError(f"report folder {folder} is one of the runs it reports; pick --name")
        super().validate()

    def run(self) -> int:
        from sparta.report.card import format_table, write_card

        card = self.card()
        run = self.create_run(self.config())
        paths = write_card(card, run.path)
        print(format_table(card, width=self.get(ReportOptions).width))
        for w in card["warnings"]:
            print(f"warning: {w}")
        print(f"report: {paths['card.html']}")
        return 0


def register(sub: argparse._SubParsersAction) -> None:
    Report.register(sub)
