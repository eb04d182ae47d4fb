"""Run folders: ``config.yaml``, ``metrics.jsonl``, ``summary.json``, checkpoints and plots."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from sparta.io import atomic_write_text, write_json

if TYPE_CHECKING:
    from torch import nn

    from sparta.train import Splits, TrainConfig

DEFAULT_ROOT = "runs"
EVALS = "evals"
SPLIT_MODES = ("run", "full", "none")


def config_hash(config: dict[str, Any], length: int = 8) -> str:
    """A short stable hash of a config, used to name runs (as open_lth does)."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


class Run:
    """One run folder. Only the writing process (rank 0) should create one."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        command: str,
        root: str | os.PathLike = DEFAULT_ROOT,
        name: str | None = None,
        resume: bool = False,
        overwrite: bool = False,
    ) -> Run:
        """Make (or, with ``resume``, reopen) the folder ``root/name``.

        The default name is ``{command}-{hash of the config}``, so the same config names the
        same folder. An existing folder without ``resume`` or ``overwrite`` is an error,
        because silently mixing two runs' metrics would corrupt both.
        """
        name = name or f"{command}-{config_hash(config)}"
        path = Path(root) / name
        if path.exists() and not resume:
            if not overwrite:
                raise ValueError(
                    f"run folder {path} exists; pass --resume to continue it, --overwrite to "
                    "replace it, or --name for a new one"
                )
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        run.write_config({"command": command, **config})
        return run

    @classmethod
    def open(
        cls,
        config: dict[str, Any],
        command: str,
        root: str | os.PathLike = DEFAULT_ROOT,
        name: str | None = None,
        resume: bool = False,
        overwrite: bool = False,
        allowed: tuple[str, ...] = (),
    ) -> Run:
        """:meth:`create`, but a resumed folder made with other options (any key of ``config``
        outside ``allowed`` whose recorded value differs) is refused with a ValueError."""
        from sparta.options import check_unchanged

        name = name or f"{command}-{config_hash(config)}"
        path = Path(root) / name
        if resume and (path / "config.yaml").is_file():
            recorded = cls(path).read_config()
            check_unchanged(path, recorded, config, allowed, "use another --name or --overwrite")
        return cls.create(config, command, root, name, resume, overwrite)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        device: str = "cpu",
        dataset: str | None = None,
        splits: str = "run",
    ) -> tuple[nn.Module, Splits | None, TrainConfig]:
        """The model of a checkpoint file or run folder, its data and its training config.

        ``splits`` is ``"run"`` (the training/validation/test sets as the run folder's
        config.yaml recorded them: subsets and validation split; the dataset's whole splits
        when the checkpoint has no run folder), ``"full"`` (the dataset's whole train and
        test splits, no validation) or ``"none"`` (no data loaded; the config is the run's, as
        for ``"run"``). ``dataset`` asks for
        another dataset with the same input shape and classes. Every check (the file, the
        dataset name and shape) runs before any data is loaded.
        """
        import sparta
        from sparta import data as sdata
        from sparta.train import Splits, TrainConfig, load_splits
        from sparta.train.config import read_yaml

        if splits not in SPLIT_MODES:
            raise ValueError(
                f"splits={splits!r} is not allowed; expected one of {', '.join(SPLIT_MODES)}"
            )
        given = Path(path)
        if given.is_file() and given.suffix != ".safetensors":
            raise ValueError(
                f"{given} is not a checkpoint; expected a .safetensors file or a run folder"
            )
        model = sparta.load(given, device=device)
        spec = model.sparta_spec
        trained_on = spec["dataset"]["name"]
        name = dataset or trained_on
        if name != trained_on:
            have = sdata.info(name)
            want = tuple(spec["dataset"]["input_shape"])
            if (
                tuple(have.input_shape) != want
                or have.num_classes != spec["dataset"]["num_classes"]
            ):
                raise ValueError(
                    f"checkpoint was trained on {trained_on} (inputs {want}, "
                    f"{spec['dataset']['num_classes']} classes); dataset {name} has "
                    f"{tuple(have.input_shape)} and {have.num_classes} classes"
                )
        known = set(TrainConfig.__dataclass_fields__)
        values: dict[str, Any] = {"val_fraction": 0.0}
        folder = run_folder_of(model.sparta_checkpoint["path"])
        if folder is not None and splits != "full":
            recorded = read_yaml(folder / "config.yaml")
            values = {k: v for k, v in recorded.items() if k in known}
        values.update(dataset=name, model=spec["name"], width=spec.get("width", 1.0))
        config = TrainConfig.from_dict(values)
        if splits == "none":
            return model, None, config
        if splits == "full":
            return model, Splits(sdata.load(name, "train"), None, sdata.load(name, "test")), config
        return model, load_splits(config), config

    # files
    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def summary_file(self) -> Path:
        return self.path / "summary.json"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def file(self, name: str) -> Path:
        return self.path / name

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_text(self.config_file, yaml.safe_dump(_plain(config), sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        return yaml.safe_load(self.config_file.read_text()) or {}

    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON object to ``metrics.jsonl`` and flush it to disk."""
        with self.metrics_file.open("a") as f:
            f.write(json.dumps(_plain(record)) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def metrics(self) -> list[dict[str, Any]]:
        """Every record of ``metrics.jsonl`` (a torn last line from a kill is skipped)."""
        return list(_read_jsonl(self.metrics_file))

    def truncate_metrics(self, keep: Any) -> None:
        """Keep only the records for which ``keep(record)`` is true (used on resume)."""
        kept = [r for r in self.metrics() if keep(r)]
        atomic_write_text(self.metrics_file, "".join(json.dumps(r) + "\n" for r in kept))

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.summary_file, _plain(summary))

    def read_summary(self) -> dict[str, Any]:
        return json.loads(self.summary_file.read_text()) if self.summary_file.is_file() else {}


def run_folder_of(path: str | os.PathLike) -> Path | None:
    """The run folder a checkpoint path belongs to: the folder itself, or the folder of a
    file (``run/model.safetensors``) or of a checkpoint (``run/checkpoints/x.safetensors``);
    None when no ``config.yaml`` says it is one."""
    path = Path(path)
    candidates = [path] if path.is_dir() else [path.parent, path.parent.parent]
    for folder in candidates:
        if (folder / "config.yaml").is_file():
            return folder
    return None


def eval_folder(ckpt: str | os.PathLike, command: str, config: dict[str, Any]) -> Path | None:
    """Where an evaluation of ``ckpt`` is recorded: ``<run>/evals/<command>-<hash>`` when
    ``ckpt`` is a run folder or a file inside one, else None."""
    folder = run_folder_of(ckpt)
    if folder is None:
        return None
    return folder / EVALS / f"{command}-{config_hash(config)}"


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue


def _plain(obj: Any) -> Any:
    """Convert tuples, paths and numpy/torch scalars to plain YAML/JSON types."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    return obj
