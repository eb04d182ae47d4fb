"""The ``sparta`` command line. Bad input prints one line and exits 2."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        raise UsageError(message)


# ------------------------------------------------------------------ flags from dataclasses
def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One ``--flag`` per dataclass field, with its help, type and choices; defaults are
    suppressed so that only flags the user typed override the config file."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_ = f"{f.metadata.get('help', '')} (default: {default!r})"
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_}
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
            continue
        origin = typing.get_origin(kind)
        if origin in (list, tuple):
            (item,) = set(typing.get_args(kind)) - {Ellipsis}
            parser.add_argument(flag, nargs="*", type=item, **kw)
            continue
        if origin in (typing.Union, types.UnionType):
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        parser.add_argument(flag, type=kind, choices=f.metadata.get("choices"), **kw)


def config_from_args(cls: type, args: argparse.Namespace) -> Any:
    """Defaults < ``--config`` YAML < flags typed on the command line."""
    from sparta.train.config import read_yaml

    values: dict[str, Any] = read_yaml(args.config) if getattr(args, "config", None) else {}
    names = {f.name for f in dataclasses.fields(cls)}
    values.update({k: v for k, v in vars(args).items() if k in names})
    return cls.from_dict(values)


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file of options (flags on the command line win)")
    p.add_argument("--out", default="runs", help="folder that holds run folders (default: runs)")
    p.add_argument("--name", help="run folder name (default: command and a hash of the config)")
    p.add_argument(
        "--resume", action="store_true", help="continue the run folder's newest checkpoint"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")


# ------------------------------------------------------------------ commands
def cmd_train(args: argparse.Namespace) -> int:
    from sparta.report import plot_learning_curves
    from sparta.train import TrainConfig, train

    cfg = config_from_args(TrainConfig, args)
    result = train(
        cfg,
        root=args.out,
        name=args.name,
        resume=args.resume,
        overwrite=args.overwrite,
        quiet=args.quiet,
    )
    if result.run is None:
        return 0
    plot = plot_learning_curves(result.run.path)
    s = result.summary
    print(
        f"test_acc={s['test_acc']:.4f} ({cfg.model} on {cfg.dataset}, {s['epochs']} epochs, "
        f"{s['train_time_s']:.1f}s)"
    )
    print(f"run: {result.run.path}")
    print(f"plot: {plot}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job: LeNet-300-100 on real Fashion-MNIST (digits when it is absent)."""
    from sparta import data as sdata

    found = {row["name"]: row for row in sdata.available()}
    dataset = "fashion-mnist"
    if not found["fashion-mnist"]["found"]:
        logging.getLogger("sparta").warning(
            "Fashion-MNIST not found (searched %s); install it with "
            "'apt-get install dataset-fashion-mnist'. Falling back to the bundled digits set.",
            ", ".join(map(str, found["fashion-mnist"].get("searched", []))),
        )
        dataset = "digits"
    flags = [
        "--dataset",
        dataset,
        "--model",
        "lenet300",
        "--epochs",
        str(args.epochs),
        "--lr",
        "0.05",
        "--batch-size",
        "128",
        "--name",
        f"demo-{dataset}",
        "--overwrite",
        "--out",
        args.out,
    ]
    quiet = ["--quiet"] if args.quiet else []
    return cmd_train(build_parser().parse_args([*quiet, "train", *flags]))


def cmd_eval(args: argparse.Namespace) -> int:
    import sparta
    from sparta import data as sdata
    from sparta.runs import Run
    from sparta.train import evaluate

    model = sparta.load(args.ckpt, device=args.device)
    spec = model.sparta_spec
    name = args.dataset or spec["dataset"]["name"]
    dataset = sdata.load(name, args.split)
    if tuple(dataset.input_shape) != tuple(spec["dataset"]["input_shape"]):
        raise ValueError(
            f"checkpoint was trained on {spec['dataset']['name']} with inputs "
            f"{tuple(spec['dataset']['input_shape'])}; dataset {name} has {dataset.input_shape}"
        )
    if args.subset:
        dataset = dataset.take(min(args.subset, len(dataset)))
    res = evaluate(model, dataset, args.batch_size)
    config = {
        "ckpt": str(model.sparta_checkpoint["path"]),
        "dataset": name,
        "split": args.split,
        "subset": args.subset,
    }
    run = Run.create(config, "eval", root=args.out, name=args.name, overwrite=True)
    run.write_summary(
        {f"{args.split}_acc": res["acc"], f"{args.split}_loss": res["loss"], "n": res["n"]}
    )
    print(f"{args.split}_acc={res['acc']:.4f} loss={res['loss']:.4f} n={res['n']} ({name})")
    print(f"run: {run.path}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from sparta import data as sdata

    for row in sdata.available():
        where = row.get("path") or "not found; searched: " + ", ".join(
            map(str, row.get("searched", []))
        )
        print(f"{row['name']:<14} {'yes' if row['found'] else 'no ':<4} {where}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from sparta import data as sdata
    from sparta import models

    info = sdata.info(args.dataset)
    for name in models.names(args.pattern):
        m = models.create(name, dataset=info)
        flops = models.count_flops(m, info.input_shape)
        print(f"{name:<10} params={models.count_params(m):>11,} MACs={flops:>13,}")
    return 0


# ------------------------------------------------------------------ parser and entry point
def build_parser() -> argparse.ArgumentParser:
    from sparta.train import TrainConfig

    parser = _Parser(prog="sparta", description="Sparse and trustworthy neural networks.")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or info logs")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a model and write a run folder")
    add_dataclass_flags(p, TrainConfig)
    _add_run_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("demo", help="the main job: LeNet-300-100 on Fashion-MNIST")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--out", default="runs")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("eval", help="accuracy of a checkpoint or run folder")
    p.add_argument("--ckpt", required=True, help="run folder or .safetensors file")
    p.add_argument("--dataset", help="dataset (default: the one the model was trained on)")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--subset", type=int, default=0, help="evaluate on this many samples only")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="runs")
    p.add_argument("--name")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("datasets", help="list datasets and where their files were found")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("models", help="list models with parameter and MAC counts")
    p.add_argument("pattern", nargs="?", help="glob filter, e.g. 'resnet*'")
    p.add_argument("--dataset", default="fashion-mnist", help="dataset whose shape to count for")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(
            level=logging.WARNING if args.quiet else args.log_level,
            format="%(levelname)s %(name)s: %(message)s",
        )
        func: Callable[[argparse.Namespace], int] = args.func
        return func(args)
    except (UsageError, ValueError, FileNotFoundError, FloatingPointError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"sparta: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("sparta: interrupted; continue with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
