"""The ``sparta`` command line. Bad input prints one line and exits 2.

Each command lives in ``sparta/commands/<name>.py`` and exposes ``register(subparsers)``;
adding a command is one file plus one entry in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

EXIT_USAGE = 2
COMMANDS = [
    "demo",
    "train",
    "eval",
    "info",
    "lottery",
    "prune",
    "export",
    "attack",
    "unlearn",
    "backdoor",
    "certify",
    "card",
]


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become :class:`UsageError` (one line, exit 2)."""

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


def config_from_args(cls: type, args: argparse.Namespace, file_values: dict | None = None) -> Any:
    """Defaults < ``--config`` YAML < flags typed on the command line (for ``cls``'s fields)."""
    from sparta.train.config import read_yaml

    if file_values is None:
        file_values = read_yaml(args.config) if getattr(args, "config", None) else {}
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in file_values.items() if k in names}
    values.update({k: v for k, v in vars(args).items() if k in names})
    return cls.from_dict(values)


def add_run_flags(p: argparse.ArgumentParser, resume: bool = True) -> None:
    """``--config``, ``--out``, ``--name``, ``--overwrite`` (and ``--resume``)."""
    p.add_argument("--config", help="YAML file of options (flags on the command line win)")
    p.add_argument("--out", default="runs", help="folder that holds run folders (default: runs)")
    p.add_argument("--name", help="run folder name (default: command and a hash of the config)")
    if resume:
        p.add_argument(
            "--resume", action="store_true", help="continue the run folder's newest checkpoint"
        )
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")


# ------------------------------------------------------------------ parser and entry point
def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="sparta", description="Sparse and trustworthy neural networks.")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or info logs")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in COMMANDS:
        importlib.import_module(f"sparta.commands.{name}").register(sub)
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
