"""The full report card: LeNet-5 on Fashion-MNIST, every default variant, every pillar,
sparsities 0.5, 0.8, 0.9, 0.95, with the library's default budgets (full training set), or
with the budgets of a YAML file (``--config configs/card-demo.yaml``: the demo's). Cells are
cached under ``--out``/card-<tag>, so a killed run continues where it was; ``--workers N`` or
``--executor ray`` spread the cells.

    python benchmarks/card.py [--config FILE.yaml] [--workers 2] [--executor ray] [--out runs]

Writes ``benchmarks/results/card[-<tag>].json`` (the card, with its wall time per pillar)
and ``.md`` (the table for BENCHMARKS.md). Several hours on two cores with the default
budgets; about 25 minutes with the demo's.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import yaml

from sparta.experiments.card import CardOptions, card
from sparta.experiments.card.options import DEFAULT_VARIANTS
from sparta.report.card import format_table, write_card

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--executor", default="local", choices=["local", "ray"])
    p.add_argument("--ray-address", default="")
    p.add_argument("--out", default="runs")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--config", help="YAML of card options (budgets); variants/sparsities stay")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    budgets = yaml.safe_load(Path(args.config).read_text()) if args.config else {}
    tag = f"card-{Path(args.config).stem}" if args.config else "card-full"
    opts = CardOptions.from_dict(
        {
            **budgets,
            "dataset": "fashion-mnist",
            "model": "lenet5",
            "variants": list(DEFAULT_VARIANTS),
            "sparsities": [0.5, 0.8, 0.9, 0.95],
            "workers": args.workers,
            "executor": args.executor,
            "ray_address": args.ray_address,
        }
    )
    start = time.perf_counter()
    res = card(opts, out=args.out, name=tag, resume=True, quiet=args.quiet)
    result = {**res.card, "wall_s": time.perf_counter() - start, "folder": str(res.folder)}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / ("card.json" if tag == "card-full" else f"{tag}.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    files = write_card(res.card, res.folder)
    out.with_suffix(".md").write_text(files["card.md"].read_text())
    print(format_table(res.card))
    for name, pillar in res.card["pillars"].items():
        print(f"{name}: {pillar['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
