"""``sparta lottery``: iterative magnitude pruning with rewinding (lottery tickets).

Writes ``summary.json`` (``levels``, ``test_acc`` of the last ticket, ``sparsity``), a
markdown table ``levels.md`` and ``levels.png`` (test accuracy vs % weights remaining).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from sparta.cli import add_dataclass_flags, add_run_flags
    from sparta.sparsity.lottery import LotteryConfig
    from sparta.train import TrainConfig

    p = sub.add_parser("lottery", help="lottery tickets: iterative magnitude pruning + rewinding")
    add_dataclass_flags(p, TrainConfig)
    add_dataclass_flags(p, LotteryConfig)
    p.add_argument(
        "--rewind",
        dest="rewind_step",
        type=int,
        default=argparse.SUPPRESS,
        help="same as --rewind-step: 0 rewinds to the init, k to step k of the dense run",
    )
    add_run_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sparta.cli import config_from_args
    from sparta.sparsity.lottery import LotteryConfig, run_lottery
    from sparta.train import TrainConfig
    from sparta.train.config import read_yaml

    file_values = read_yaml(args.config) if args.config else {}
    known = set(TrainConfig.__dataclass_fields__) | set(LotteryConfig.__dataclass_fields__)
    unknown = sorted(set(file_values) - known)
    if unknown:
        raise ValueError(f"unknown config key {unknown[0]!r}; allowed: {', '.join(sorted(known))}")
    options = config_from_args(LotteryConfig, args, file_values)
    cfg = config_from_args(TrainConfig, args, file_values)
    result = run_lottery(
        cfg,
        options,
        root=args.out,
        name=args.name,
        resume=args.resume,
        overwrite=args.overwrite,
        quiet=args.quiet,
    )
    print(result.run.file("levels.md").read_text(), end="")
    s = result.summary
    print(
        f"test_acc={s['test_acc']:.4f} at {100 * s['remaining']:.2f}% weights remaining "
        f"(dense {s['dense_test_acc']:.4f}; {cfg.model} on {cfg.dataset})"
    )
    print(f"run: {result.run.path}")
    print(f"plot: {result.run.file('levels.png')}")
    return 0
