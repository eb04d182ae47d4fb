"""``sparta demo``: the main job, LeNet-300-100 on real Fashion-MNIST."""

from __future__ import annotations

import argparse
import logging


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job: LeNet-300-100 on Fashion-MNIST")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--out", default="runs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
    argv = ["train", *flags.split(), "--epochs", str(args.epochs)]
    argv += ["--name", f"demo-{dataset}", "--out", args.out]
    train_args = build_parser().parse_args(["--quiet", *argv] if args.quiet else argv)
    return train_args.func(train_args)
