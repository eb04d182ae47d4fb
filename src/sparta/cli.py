"""The ``sparta`` command line. Bad input prints one message and exits 2.

Each command lives in ``sparta/commands/<name>.py`` as a :class:`Command` subclass and exposes
``register(subparsers)`` (its ``register``; ``backdoor`` groups three sub-commands); adding a
command is one file plus one entry in :data:`COMMANDS`.
"""

from __future__ import annotations

import abc
import argparse
import contextlib
import dataclasses
import importlib
import logging
import os
import shutil
import sys
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from sparta.options import Options, check_unchanged, option

EXIT_USAGE = 2
COMMANDS = [
    "demo",
    "train",
    "eval",
    "info",
    "list",
    "lottery",
    "pool",
    "prune",
    "export",
    "attack",
    "unlearn",
    "backdoor",
    "certify",
    "report",
    "card",
    "bip",
    "hydra",
    "double_win",
    "anytime",
]


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become :class:`UsageError` (one line, exit 2)."""

    def error(self, message: str) -> typing.NoReturn:
        raise UsageError(message)


# ------------------------------------------------------------------ flags from dataclasses
def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One ``--flag`` per dataclass field, with its help, type and choices (an optional
    positional argument instead for a field marked ``positional=True``); defaults are
    suppressed so that only flags the user typed override the config file."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        shown = "required" if f.metadata.get("required") else f"default: {default!r}"
        help_ = f"{f.metadata.get('help', '')} ({shown})".replace("%", "%%")
        if f.metadata.get("positional"):  # a list takes one or more values, else one or none
            many = typing.get_origin(kind) in (list, tuple)
            nargs = "+" if many and f.metadata.get("required") else "*" if many else "?"
            parser.add_argument(f.name, nargs=nargs, default=argparse.SUPPRESS, help=help_)
            continue
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
    """``--config``, ``--out``, ``--name``, ``--overwrite`` (and ``--resume``, ``--override``)."""
    p.add_argument("--config", help="YAML file of options (flags on the command line win)")
    p.add_argument("--out", default="runs", help="folder that holds run folders (default: runs)")
    p.add_argument("--name", help="run folder name (default: command and a hash of the config)")
    if resume:
        p.add_argument(
            "--resume",
            nargs="?",
            const=True,
            default=False,
            metavar="RUN",
            help="continue a run folder (RUN, or --out/--name) with its recorded config.yaml",
        )
        p.add_argument(
            "--override",
            default="",
            metavar="A,B",
            help="with --resume: options that may differ from the recorded ones",
        )
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")


def add_global_flags(p: argparse.ArgumentParser, after_command: bool = False) -> None:
    """``--quiet`` and ``--log-level``, accepted before and after the sub-command."""
    kw: dict[str, Any] = {"default": argparse.SUPPRESS} if after_command else {}
    p.add_argument("--quiet", action="store_true", help="no progress bars or info logs", **kw)
    p.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        **(kw or {"default": "INFO"}),
    )


# ------------------------------------------------------------------ the command skeleton
def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


class Command(abc.ABC):
    """One ``sparta`` command, built the same way for all (open_lth's Runner).

    Its :attr:`options` dataclasses are its flags; ``--config FILE.yaml`` fills them and flags
    win; with ``--resume`` the run folder's config.yaml fills them and a flag that differs is
    an error unless ``--override`` lists it. :meth:`main` builds the command from the parsed
    arguments (names and values are checked there), calls :meth:`validate` (more checks,
    still before any data is loaded or any folder is created), then :meth:`run`. The run
    folder is :meth:`location`: ``--out/--name``, ``--out/<command>-<hash>``, or, for an
    evaluation (``folder = "eval"``) of a checkpoint inside a run folder and no ``--name``,
    ``<run>/evals/<command>-<hash>``. An existing folder is an error without
    ``--overwrite`` (or ``--resume``).
    """

    name: ClassVar[str] = ""  # sub-command
    command: ClassVar[str] = ""  # recorded in config.yaml and the default folder name
    help: ClassVar[str] = ""
    options: ClassVar[tuple[type, ...]] = ()  # Options dataclasses: the flags
    folder: ClassVar[str] = "run"  # "run", "eval" (inside --ckpt's run folder) or "none"
    resumable: ClassVar[bool] = False  # has state to resume (--resume, --override)
    free_on_resume: ClassVar[tuple[str, ...]] = ()  # options that may differ on --resume

    # ------------------------------------------------------------------ building
    @classmethod
    def option_types(cls) -> tuple[type, ...]:
        """The Options dataclasses whose fields are this command's flags."""
        return cls.options

    @classmethod
    def register(cls, sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
        """Add this command's parser (its options' flags, run flags, global flags)."""
        p = sub.add_parser(cls.name, help=cls.help, description=cls.help)
        for kind in cls.option_types():
            add_dataclass_flags(p, kind)
        cls.add_arguments(p)
        if cls.folder == "none":
            p.add_argument("--config", help="YAML file of options (flags on the command line win)")
        else:
            add_run_flags(p, resume=cls.resumable)
        add_global_flags(p, after_command=True)
        p.set_defaults(func=cls.main)
        return p

    @classmethod
    def add_arguments(cls, p: argparse.ArgumentParser) -> None:
        """Extra flags that are not options (e.g. an alias); none by default."""
        return None

    @classmethod
    def main(cls, args: argparse.Namespace) -> int:
        """Build, validate, run: the three steps of every command."""
        cmd = cls(args)
        cmd.validate()
        path = cmd.location(cmd.config()) if cmd.folder != "none" else None
        existed = path is None or path.exists()
        try:
            return cmd.run()
        except (UsageError, ValueError, FileNotFoundError):
            # bad input met late: leave no folder behind, unless it holds a checkpoint
            if not existed and process_rank() == 0 and path is not None and path.is_dir():
                if not any(path.rglob("*.safetensors")):
                    shutil.rmtree(path)
            raise

    def __init__(self, args: argparse.Namespace) -> None:
        from sparta.train.config import read_yaml

        self.args = args
        self.quiet: bool = bool(getattr(args, "quiet", False))
        kinds = self.option_types()
        known = {f.name for k in kinds for f in dataclasses.fields(k)}
        file_values = read_yaml(args.config) if getattr(args, "config", None) else {}
        if "command" in file_values:  # a run's own config.yaml: the options it recorded
            recorded = file_values.pop("command")
            if recorded != self.run_command:
                raise ValueError(
                    f"{args.config} was recorded by `sparta {recorded}`, not "
                    f"`sparta {self.run_command}`; give it to that command"
                )
        unknown = sorted(set(file_values) - known)
        if unknown:
            raise ValueError(
                f"unknown config key {unknown[0]!r} in {args.config}; "
                f"allowed: {', '.join(sorted(known))}"
            )
        self.resume_dir: Path | None = None
        base = file_values
        if getattr(args, "resume", False):
            base = self._resume_values(file_values, known)
        elif getattr(args, "override", ""):
            raise UsageError(f"--override {args.override} only applies with --resume")
        self._opts: dict[type, Any] = {k: config_from_args(k, args, base) for k in kinds}
        for kind, opts in self._opts.items():
            for f in dataclasses.fields(kind):
                if f.metadata.get("required") and getattr(opts, f.name) in (None, ""):
                    raise UsageError(f"the following arguments are required: {_flag(f.name)}")

    def _resume_values(self, file_values: dict[str, Any], known: set[str]) -> dict[str, Any]:
        """The recorded config.yaml of the run to resume, checked against typed flags."""
        from sparta.train.config import read_yaml

        args = self.args
        if isinstance(args.resume, str):
            folder = Path(args.resume)
        elif args.name:
            folder = Path(args.out) / args.name
        else:  # the folder is named by the hash of the typed config: nothing to read
            return file_values
        if not (folder / "config.yaml").is_file():
            raise FileNotFoundError(f"nothing to resume: {folder / 'config.yaml'} not found")
        self.resume_dir = folder
        recorded = read_yaml(folder / "config.yaml")
        if recorded.get("command", self.run_command) != self.run_command:
            raise ValueError(
                f"{folder} is a `sparta {recorded['command']}` run, not {self.run_command}"
            )
        base = {k: v for k, v in recorded.items() if k in known}
        typed = {**file_values, **{k: v for k, v in vars(args).items() if k in known}}
        allowed = {a.strip().lstrip("-").replace("-", "_") for a in args.override.split(",")}
        allowed |= set(self.free_on_resume)
        old: dict[str, Any] = {}
        new: dict[str, Any] = {}
        for kind in self.option_types():
            names = {f.name for f in dataclasses.fields(kind)}
            before = kind.from_dict({k: v for k, v in base.items() if k in names})
            after = kind.from_dict({k: v for k, v in {**base, **typed}.items() if k in names})
            for name in sorted(names & set(typed)):
                old[name], new[name] = getattr(before, name), getattr(after, name)
        check_unchanged(folder, old, new, allowed)
        return {**base, **typed}

    # ------------------------------------------------------------------ what commands use
    @property
    def run_command(self) -> str:
        return self.command or self.name

    def get(self, kind: type[T]) -> T:
        """The resolved options of dataclass ``kind``."""
        return self._opts[kind]

    def config(self) -> dict[str, Any]:
        """The resolved options of every dataclass: recorded in config.yaml and hashed."""
        out: dict[str, Any] = {}
        for opts in self._opts.values():
            out.update(opts.to_dict())
        return out

    def validate(self) -> None:
        """Checks before any data is loaded or folder is created (the options' own checks
        already ran when they were built); by default the run folder's availability."""
        if self.folder != "none":
            self.check_location(self.location(self.config()))

    @abc.abstractmethod
    def run(self) -> int:
        """Do the work and print the result; return the exit code."""

    def location(self, config: dict[str, Any], ckpt: str | None = None) -> Path:
        """The run folder for ``config`` (see the class docstring)."""
        from sparta.runs import config_hash, eval_folder

        args = self.args
        if self.resume_dir is not None:
            return self.resume_dir
        if args.name:
            return Path(args.out) / args.name
        ckpt = ckpt if ckpt is not None else config.get("ckpt")
        if self.folder == "eval" and ckpt:
            inside = eval_folder(ckpt, self.run_command, config)
            if inside is not None:
                return inside
        return Path(args.out) / f"{self.run_command}-{config_hash(config)}"

    def check_location(self, path: Path) -> None:
        """An existing folder needs --overwrite (or --resume); --resume needs one. Only
        the writing process checks (under torchrun rank 0 may have created it already)."""
        if process_rank() > 0:
            return
        resume = bool(getattr(self.args, "resume", False))
        if resume and not path.is_dir():
            raise FileNotFoundError(f"nothing to resume: run folder {path} not found")
        if path.exists() and not resume and not self.args.overwrite:
            raise ValueError(
                f"run folder {path} exists; pass --overwrite to replace it"
                + (", --resume to continue it" if self.resumable else "")
                + ", or --name for a new one"
            )

    def create_run(self, config: dict[str, Any], ckpt: str | None = None) -> Any:
        """Create (or reopen with --resume) the run folder and record ``config``."""
        from sparta.runs import Run

        path = self.location(config, ckpt)
        self.check_location(path)
        return Run.create(
            config,
            self.run_command,
            root=path.parent,
            name=path.name,
            resume=bool(getattr(self.args, "resume", False)),
            overwrite=self.args.overwrite,
        )


T = typing.TypeVar("T")


@dataclasses.dataclass
class CheckpointOptions(Options):
    """The model to evaluate and the data to evaluate it on (eval, attack, certify)."""

    ckpt: str = option("", "run folder or .safetensors file", required=True)
    dataset: str = option("", "dataset (default: the one the model was trained on)")
    split: str = option("test", "split to evaluate on", choices=("train", "test"))
    device: str = option("cpu", "device: cpu, cuda, ...")

    def __post_init__(self) -> None:
        if self.dataset:
            from sparta import data as sdata

            sdata.info(self.dataset)  # an unknown name fails here, before any data

    def load_model(self) -> tuple[Any, Any]:
        """The checkpoint's model and its training config (no data loaded)."""
        from sparta.runs import Run

        model, _, config = Run.from_checkpoint(
            self.ckpt, self.device, self.dataset or None, splits="none"
        )
        return model, config

    def load(self) -> tuple[Any, Any]:
        """The checkpoint's model and the requested split of the dataset (all of it)."""
        from sparta import data as sdata

        model, config = self.load_model()
        return model, sdata.load(config.dataset, self.split)


# ------------------------------------------------------------------ parser and entry point
def build_parser() -> argparse.ArgumentParser:
    from sparta import __version__

    parser = Parser(prog="sparta", description="Sparse and trustworthy neural networks.")
    parser.add_argument("--version", action="version", version=f"sparta {__version__}")
    add_global_flags(parser)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in COMMANDS:
        importlib.import_module(f"sparta.commands.{name}").register(sub)
    return parser


def process_rank() -> int:
    """This process's rank under torchrun (``RANK``), 0 otherwise."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code. Under torchrun only rank 0 logs and prints."""
    rank = process_rank()
    try:
        args = build_parser().parse_args(argv)
        if rank > 0:
            args.quiet = True
        logging.basicConfig(
            level=logging.ERROR if rank > 0 else logging.WARNING if args.quiet else args.log_level,
            format="%(levelname)s %(name)s: %(message)s",
        )
        func: Callable[[argparse.Namespace], int] = args.func
        from sparta import progress

        with contextlib.ExitStack() as stack:
            quiet_before = progress.set_quiet(args.quiet)  # --quiet silences every bar
            stack.callback(progress.set_quiet, quiet_before)
            if rank > 0:
                devnull = stack.enter_context(open(os.devnull, "w"))
                stack.enter_context(contextlib.redirect_stdout(devnull))
            return func(args)
    except SystemExit as e:  # --help, --version
        return e.code if isinstance(e.code, int) else 0 if e.code is None else EXIT_USAGE
    except (UsageError, ValueError, FileNotFoundError, FloatingPointError) as e:
        msg = str(e).strip() or type(e).__name__
        print(f"sparta: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("sparta: interrupted; continue with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
