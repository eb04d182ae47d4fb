"""``sparta datasets`` and ``sparta models``: what is available."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="list datasets and where their files were found")
    p.set_defaults(func=datasets)
    p = sub.add_parser("models", help="list models with parameter and MAC counts")
    p.add_argument("pattern", nargs="?", help="glob filter, e.g. 'resnet*'")
    p.add_argument("--dataset", default="fashion-mnist", help="dataset whose shape to count for")
    p.set_defaults(func=models_)


def datasets(args: argparse.Namespace) -> int:
    from sparta import data as sdata

    for row in sdata.available():
        searched = ", ".join(map(str, row.get("searched", [])))
        where = row.get("path") or f"not found; searched: {searched}"
        print(f"{row['name']:<14} {'yes' if row['found'] else 'no':<4} {where}")
    return 0


def models_(args: argparse.Namespace) -> int:
    from sparta import data as sdata
    from sparta import models

    info = sdata.info(args.dataset)
    for name in models.names(args.pattern):
        m = models.create(name, dataset=info)
        flops = models.count_flops(m, info.input_shape)
        print(f"{name:<10} params={models.count_params(m):>11,} MACs={flops:>13,}")
    return 0
