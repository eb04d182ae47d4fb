"""``sparta datasets`` and ``sparta models``: what is available."""

from __future__ import annotations

import argparse

from sparta.commands import list as list_


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="list datasets and where their files were found")
    p.set_defaults(func=datasets)
    p = sub.add_parser("models", help="list models with parameter and MAC counts")
    p.add_argument("pattern", nargs="?", help="glob filter, e.g. 'resnet*'")
    p.add_argument("--dataset", default="fashion-mnist", help="dataset whose shape to count for")
    p.set_defaults(func=models_)


def datasets(args: argparse.Namespace) -> int:
    return list_.run(argparse.Namespace(kind="datasets", pattern="*", dataset=None))


def models_(args: argparse.Namespace) -> int:
    pattern = "*" if args.pattern is None else args.pattern
    return list_.run(argparse.Namespace(kind="models", pattern=pattern, dataset=args.dataset))
