"""``sparta report RUN [RUN ...]``: one report card page from run folders made one by one."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="a report card (card.html, card.json, card.md) from existing run folders",
        description="Compare runs made one by one (train, prune, attack, certify, unlearn, "
        "backdoor, ...) on one page without re-running them. Each run folder's summary.json "
        "(and its evals/*/summary.json) gives a row.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders to compare")
    p.add_argument("--out", default="runs", help="folder that holds the report (default: runs)")
    p.add_argument("--name", help="report folder name (default: report-<hash of the runs>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report folder")
    p.add_argument("--width", type=int, default=120, help="width of the terminal table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sparta.report.card import card_from_runs, format_table, write_card
    from sparta.runs import config_hash

    card = card_from_runs(args.runs)  # validates every folder before anything is written
    runs = sorted(str(Path(r).resolve()) for r in card["options"]["runs"])
    name = args.name or f"report-{config_hash({'runs': runs})}"
    folder = Path(args.out) / name
    if any(folder.resolve() == Path(r).resolve() for r in card["options"]["runs"]):
        raise ValueError(f"report folder {folder} is one of the runs it reports; pick --name")
    if folder.exists():
        if not args.overwrite:
            raise ValueError(
                f"report folder {folder} exists; pass --overwrite to replace it or --name "
                "for a new one"
            )
        shutil.rmtree(folder)
    paths = write_card(card, folder)
    print(format_table(card, width=args.width))
    for w in card["warnings"]:
        print(f"warning: {w}")
    print(f"report: {paths['card.html']}")
    return 0
