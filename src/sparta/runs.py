"""Run folders: ``config.yaml``, ``metrics.jsonl``, ``summary.json``, checkpoints and plots."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from sparta.io import write_json

DEFAULT_ROOT = "runs"


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
        tmp = self.config_file.with_suffix(".yaml.tmp")
        tmp.write_text(yaml.safe_dump(_plain(config), sort_keys=False))
        os.replace(tmp, self.config_file)

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
        tmp = self.metrics_file.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, self.metrics_file)

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.summary_file, _plain(summary))

    def read_summary(self) -> dict[str, Any]:
        return json.loads(self.summary_file.read_text()) if self.summary_file.is_file() else {}


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
