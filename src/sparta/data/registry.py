"""Datasets by name: ``@register_dataset`` on a loader, then ``load("fashion-mnist")``.

A loader is ``fn(split, root, download, **kw) -> ImageDataset``. Its ``info`` is either a
fixed :class:`DatasetInfo` or a function of the same keyword options (``synthetic``'s shape
depends on ``shape=``), so :func:`info` answers without reading any file.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sparta.registry import Entry, Registry

from .adapt import FOLDER_PREFIX, image_folder, is_import_path, load_import_path
from .base import DatasetInfo, ImageDataset
from .subsets import class_info, class_subset, is_class_spec, parse_class_spec

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
#: Where distribution packages put datasets (Debian's ``dataset-fashion-mnist``).
SYSTEM_DIR = Path("/usr/share/datasets")
#: Environment variable naming a folder of datasets.
ENV_VAR = "SPARTA_DATA"

Loader = Callable[..., ImageDataset]
#: ``locate(root) -> (folder found or None, folders searched)``
Locator = Callable[[str | None], tuple[Path | None, list[Path]]]


#: every dataset loader by name; ``meta``: ``info``, ``locate``, ``source``
DATASETS: Registry[Loader] = Registry("datasets", populate="sparta.data", label="dataset")


def register_dataset(
    name: str,
    info: DatasetInfo | Callable[..., DatasetInfo],
    locate: Locator | None = None,
    source: str = "",
    aliases: tuple[str, ...] = (),
) -> Callable[[Loader], Loader]:
    """Decorator registering ``fn(split, root, download, **kw) -> ImageDataset`` as ``name``.

    ``locate`` (optional) finds the dataset's files for :func:`available`; datasets without
    files (generated or bundled) leave it out and describe themselves in ``source``.
    """
    return DATASETS.register(name, aliases=aliases, info=info, locate=locate, source=source)


def names(pattern: str | None = None) -> list[str]:
    """Registered dataset names, sorted (optionally those matching a glob ``pattern``)."""
    return DATASETS.names(pattern)


def _entry(name: str) -> Entry[Loader]:
    return DATASETS.get(name)


def _options(fn: Callable[..., Any], skip: Sequence[str] = ()) -> list[str] | None:
    """Keyword options ``fn`` accepts (None when it takes ``**kw``)."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.name not in skip and p.kind is not p.VAR_POSITIONAL]


def _check_options(entry: Entry[Loader], kw: dict[str, Any]) -> None:
    allowed = _options(entry.obj, skip=("split", "root", "download"))
    if allowed is None:
        return
    bad = sorted(set(kw) - set(allowed))
    if bad:
        raise ValueError(
            f"dataset {entry.name!r} has no option {bad[0]!r}; "
            f"allowed: {', '.join(allowed) if allowed else 'none'}"
        )


def info(name: str, **kw: Any) -> DatasetInfo:
    """A dataset's :class:`DatasetInfo` without loading it (``kw`` as for :func:`load`);
    an image folder or an import path (see :func:`load`) is loaded to measure it."""
    if is_class_spec(name):
        spec = parse_class_spec(name)
        return class_info(info(spec.base, **kw), spec.classes, name)
    if _external(name):
        return load(name, "train", **kw).info
    entry = _entry(name)
    _check_options(entry, kw)
    fixed = entry.meta["info"]
    if isinstance(fixed, DatasetInfo):
        return fixed
    return fixed(**kw)


def load(
    name: str,
    split: str = "train",
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    **kw: Any,
) -> ImageDataset:
    """Load split ``"train"`` or ``"test"`` of dataset ``name`` into memory.

    Files are looked for in ``root`` (when given), ``$SPARTA_DATA/<name>``, ``$SPARTA_DATA``,
    ``~/.cache/sparta/<name>`` and ``/usr/share/datasets/<name>``; with ``download=True``
    missing files are fetched (checked by checksum) into ``root`` or ``~/.cache/sparta/<name>``.

    Your own data: ``"folder:/path"`` reads an image folder (:func:`~sparta.data.image_folder`,
    ``kw`` such as ``size=``) and an import path ``"my_pkg.data:load"`` calls that function
    (:func:`~sparta.data.adapt.load_import_path`); both record ``name`` as given in ``info``.

    Some classes of any of them: ``"fashion-mnist:classes=5-9[:fraction=0.01][:seed=0]"``
    (:mod:`sparta.data.subsets`: relabelled 0..k-1; ``fraction`` of the training split only).
    """
    if is_class_spec(name):
        spec = parse_class_spec(name)
        ds = load(spec.base, split, root, download, **kw)
        fraction = spec.fraction if split == "train" else 1.0
        return class_subset(ds, spec.classes, fraction, spec.seed, name)
    if _external(name):
        if split not in (*SPLITS, "val"):
            raise ValueError(f"unknown split {split!r} for {name!r}; allowed: {', '.join(SPLITS)}")
        if name.startswith(FOLDER_PREFIX):
            return image_folder(name[len(FOLDER_PREFIX) :], split, **kw)
        return load_import_path(name, split, **kw)
    entry = _entry(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} for {name!r}; allowed: {', '.join(SPLITS)}")
    _check_options(entry, kw)
    ds = entry.obj(
        split=split, root=None if root is None else os.fspath(root), download=download, **kw
    )
    log.info(
        "loaded %s/%s: %d samples of shape %s", entry.name, split, len(ds), tuple(ds.x.shape[1:])
    )
    return ds


def _external(name: Any) -> bool:
    """A dataset given as ``folder:/path`` or an import path, not a registered name."""
    return isinstance(name, str) and (name.startswith(FOLDER_PREFIX) or is_import_path(name))


def search_dirs(name: str, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """The folders searched for ``name``'s files, in order (duplicates removed)."""
    dirs: list[Path] = []
    if root is not None:
        r = Path(root).expanduser()
        dirs += [r, r / name]
    env = os.environ.get(ENV_VAR)
    if env:
        dirs += [Path(env).expanduser() / name, Path(env).expanduser()]
    dirs += [cache_dir(name), SYSTEM_DIR / name]
    seen: set[Path] = set()
    return [d for d in dirs if not (d in seen or seen.add(d))]


def cache_dir(name: str) -> Path:
    """``~/.cache/sparta/<name>``: where downloads go when no ``root`` is given."""
    return Path.home() / ".cache" / "sparta" / name


def available() -> list[dict[str, Any]]:
    """For every dataset: ``name``, ``found``, ``path`` (where found) and ``searched``."""
    out = []
    for e in DATASETS.entries():
        n, locate, source = e.name, e.meta["locate"], e.meta["source"]
        if locate is None:
            out.append({"name": n, "found": True, "path": None, "searched": [], "source": source})
            continue
        path, searched = locate(None)
        out.append(
            {
                "name": n,
                "found": path is not None,
                "path": None if path is None else str(path),
                "searched": [str(p) for p in searched],
                "source": source,
            }
        )
    return out


def find_first(
    dirs: Sequence[Path], required: Sequence[Sequence[str]]
) -> tuple[Path, list[Path]] | None:
    """The first folder holding every required file, and those files' paths.

    ``required`` lists, per file, the names it may go by (``["x", "x.gz"]``), first preferred.
    """
    for d in dirs:
        found = []
        for alternatives in required:
            hit = next((d / a for a in alternatives if (d / a).is_file()), None)
            if hit is None:
                break
            found.append(hit)
        else:
            return d, found
    return None
