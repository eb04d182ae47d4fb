"""Checkpoints: safetensors for tensors, a JSON sidecar for everything else.

A file ``X.safetensors`` always has ``X.json`` beside it holding the model's spec
(``sparta.models.spec_of``), so :func:`load` rebuilds the architecture from the
checkpoint alone. No pickle is ever read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

FORMAT = "sparta-checkpoint"
VERSION = 1
MODEL_FILE = "model.safetensors"

# Functions that restore extra model structure (masks, compacted shapes) named in a sidecar's
# "extras"; higher layers register theirs here so this module never imports them.
_RESTORERS: dict[str, Callable[[nn.Module, dict[str, torch.Tensor], Any], None]] = {}
_EXTRAS: dict[str, Callable[[nn.Module], Any]] = {}


def register_extra(
    key: str,
    describe: Callable[[nn.Module], Any],
    restore: Callable[[nn.Module, dict[str, torch.Tensor], Any], None],
) -> None:
    """Register how to describe (at save) and rebuild (at load) extra model structure."""
    _EXTRAS[key] = describe
    _RESTORERS[key] = restore


def sidecar_path(path: str | os.PathLike) -> Path:
    return Path(path).with_suffix(".json")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    The rename is atomic, so a kill at any moment leaves either the old file or the new
    one, never half a file. The temporary name is unique per process and never matches
    the ``*.safetensors``/``*.json`` globs that find checkpoints; a failed write removes it.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temporary file + rename); returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _atomic_write_bytes(path: Path, write: Callable[[Path], None]) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically (a kill never leaves half a file)."""
    path = Path(path)

    def _w(tmp: Path) -> None:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")

    _atomic_write_bytes(path, _w)


def _json_default(o: Any) -> Any:
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_checkpoint(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> Path:
    """Write ``tensors`` to ``path`` (.safetensors) and ``meta`` to its JSON sidecar.

    Both are written atomically and the sidecar last: it is the commit mark. Replacing a
    checkpoint removes the old sidecar first, so a kill between the two renames leaves a
    tensor file without a sidecar, which :func:`resolve` and :func:`latest_checkpoint`
    skip, never new tensors described by an old sidecar.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"checkpoint path must end in .safetensors, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    side = sidecar_path(path)
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp))
        side.unlink(missing_ok=True)
    write_json(side, {"format": FORMAT, "version": VERSION, **meta})
    return path


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint and its sidecar; a missing or corrupt file is a clear error."""
    path = Path(path)
    side = sidecar_path(path)
    for p in (path, side):
        if not p.is_file():
            raise FileNotFoundError(f"checkpoint file not found: {p}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"corrupt checkpoint {path}: {e}") from None
    try:
        meta = json.loads(side.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"corrupt checkpoint sidecar {side}: {e}") from None
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"{side} is not a sparta checkpoint sidecar (format={meta.get('format')!r})"
        )
    return tensors, meta


def model_meta(model: nn.Module) -> dict[str, Any]:
    """The sidecar fields that describe ``model``: its spec and extra structure."""
    from sparta.models import spec_of

    extras = {k: f(model) for k, f in _EXTRAS.items()}
    return {"model": spec_of(model), "extras": {k: v for k, v in extras.items() if v is not None}}


def save(model: nn.Module, path: str | os.PathLike, **metadata: Any) -> Path:
    """Save ``model`` (weights, buffers such as masks, and its spec) to ``path``.

    ``path`` is a ``.safetensors`` file or a folder (then ``folder/model.safetensors``).
    Extra keyword arguments are stored in the sidecar under ``metadata``.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path / MODEL_FILE
    return write_checkpoint(path, model.state_dict(), {**model_meta(model), "metadata": metadata})


def resolve(path: str | os.PathLike) -> Path:
    """The checkpoint file a path names: a file, or a run folder's final/best/newest one."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        for name in (MODEL_FILE, "best.safetensors"):
            if (path / name).is_file() and sidecar_path(path / name).is_file():
                return path / name
        newest = latest_checkpoint(path / "checkpoints")
        if newest is not None:
            return newest
        raise FileNotFoundError(
            f"no checkpoint in run folder {path} (looked for {MODEL_FILE}, "
            "best.safetensors, checkpoints/*.safetensors, each with its .json sidecar)"
        )
    raise FileNotFoundError(f"checkpoint or run folder not found: {path}")


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The newest ``*.safetensors`` in ``folder`` by name (names carry zero-padded epochs)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.glob("*.safetensors") if sidecar_path(p).is_file())
    return files[-1] if files else None


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from a checkpoint file or run folder alone, in eval mode."""
    from sparta.models import from_spec

    file = resolve(path)
    tensors, meta = read_checkpoint(file)
    if "model" not in meta:
        raise ValueError(f"{sidecar_path(file)} has no model spec; cannot rebuild the model")
    model = from_spec(meta["model"])
    restore_model(model, tensors, meta)
    model.sparta_checkpoint = {"path": str(file), "metadata": meta.get("metadata", {})}
    return model.to(device).eval()


def restore_model(model: nn.Module, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Apply extra structure from ``meta`` then load the ``model.``-free weights strictly."""
    for key, value in meta.get("extras", {}).items():
        if key not in _RESTORERS:
            _import_restorer(key)
        _RESTORERS[key](model, tensors, value)
    state = {k: v for k, v in tensors.items() if not k.startswith(("optim.", "rng.", "cb."))}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ValueError(f"checkpoint does not match the model it describes: {first}") from None


def _import_restorer(key: str) -> None:
    """Import the package that handles an extra (e.g. ``masks`` -> ``sparta.train.masks``)."""
    import importlib

    owners = {
        "masks": "sparta.train.masks",
        "shapes": "sparta.sparsity.export",
        "sparse": "sparta.sparsity.export",
        "folded": "sparta.sparsity.export",
        "inference": "sparta.sparsity.export",
        "scored": "sparta.sparsity.scores",
        "pixelfly": "sparta.models.pixelfly",
    }
    if key in owners:
        importlib.import_module(owners[key])
    if key not in _RESTORERS:
        raise ValueError(
            f"checkpoint needs extra {key!r}, which this version of sparta cannot restore"
        )
