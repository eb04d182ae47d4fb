"""``sparta card``: score a dense model and its sparse variants on every pillar."""

from __future__ import annotations

import argparse

from sparta.cli import add_dataclass_flags, add_run_flags, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    from sparta.experiments.card import CardOptions

    p = sub.add_parser(
        "card", help="report card: variants x sparsities x pillars, cached and resumable"
    )
    add_dataclass_flags(p, CardOptions)
    add_run_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sparta.experiments.card import CardOptions, card
    from sparta.report.card import format_table, write_card
    from sparta.train.config import read_yaml

    file_values = read_yaml(args.config) if args.config else {}
    known = set(CardOptions.__dataclass_fields__)
    unknown = sorted(set(file_values) - known)
    if unknown:
        raise ValueError(f"unknown config key {unknown[0]!r}; allowed: {', '.join(sorted(known))}")
    opts = config_from_args(CardOptions, args, file_values)
    res = card(
        opts,
        out=args.out,
        name=args.name,
        resume=args.resume,
        overwrite=args.overwrite,
        quiet=args.quiet,
    )
    res.files.update(write_card(res.card, res.folder))
    print(format_table(res.card))
    for w in res.card["warnings"]:
        print(f"warning: {w}")
    print(f"cells computed: {len(res.computed)}, reused: {len(res.skipped)}")
    print(f"card: {res.files['card.html']}")
    return 0
