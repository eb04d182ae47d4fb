"""``sparta list [KIND] [PATTERN]``: what every registry holds.

``sparta list`` prints each kind with its number of entries; ``sparta list KIND`` prints one
line per entry (canonical name, aliases, its metadata and a one-line description);
``PATTERN`` is a shell glob over names and aliases (``sparta list models 'resnet*'``). Models
show their parameter and MAC counts on ``--dataset`` (as ``sparta models`` does) and
datasets where their files were found (as ``sparta datasets`` does). A pattern that matches
nothing is an error (exit 2).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from sparta.cli import Command
from sparta.options import Options, option
from sparta.registry import Entry, get_registry, kinds


@dataclass
class ListOptions(Options):
    """Which registry to print, and which of its entries."""

    kind: str = option("", f"one of {', '.join(kinds())} ('': the kinds)", positional=True)
    pattern: str = option("*", "glob over names, e.g. 'resnet*'", positional=True)
    dataset: str = option("fashion-mnist", "models: dataset whose shape to count for")

    def __post_init__(self) -> None:
        if self.kind:
            get_registry(self.kind)  # an unknown kind fails here, before anything is built


class List(Command):
    name = "list"
    help = "list any registry: models, datasets, criteria, attacks, ..."
    options = (ListOptions,)
    folder = "none"

    def run(self) -> int:
        opts = self.get(ListOptions)
        show(opts.kind, opts.pattern, opts.dataset)
        return 0


def register(sub: argparse._SubParsersAction) -> None:
    List.register(sub)


def show(kind: str = "", pattern: str = "*", dataset: str = "fashion-mnist") -> None:
    """Print the kinds and their sizes (``kind=''``), or the entries of ``kind`` that match
    ``pattern`` (ValueError when none does)."""
    if not kind:
        for k in kinds():
            print(f"{k:<12} {len(get_registry(k)):>3}")
        return
    registry = get_registry(kind)
    entries = registry.entries(pattern)
    if not entries:
        raise ValueError(f"no {registry.kind} match {pattern!r}; allowed: {_all(registry)}")
    if registry.kind == "models":
        print_models([e.name for e in entries], dataset)
    elif registry.kind == "datasets":
        print_datasets([e.name for e in entries])
    else:
        width = max(len(e.name) for e in entries)
        for e in entries:
            print(describe(e, width))


def _all(registry: Any) -> str:
    return ", ".join(registry.names())


def describe(entry: Entry[Any], width: int = 12) -> str:
    """One line: name, ``(alias ...)``, scalar metadata as ``key=value``, the description."""
    parts = [f"{entry.name:<{width}}"]
    if entry.aliases:
        parts.append(f"(alias {', '.join(entry.aliases)})")
    parts += [
        f"{k}={v}"
        for k, v in sorted(entry.meta.items())
        if k != "summary" and isinstance(v, str | int | float | bool)
    ]
    if entry.doc:
        parts.append(f" {entry.doc}")
    return " ".join(parts)


def print_models(names: list[str], dataset: str) -> None:
    """One line per model: parameter and MAC counts for ``dataset``'s input shape."""
    from sparta import data as sdata
    from sparta import models

    info = sdata.info(dataset)
    for name in names:
        m = models.create(name, dataset=info)
        flops = models.count_flops(m, info.input_shape)
        print(f"{name:<10} params={models.count_params(m):>11,} MACs={flops:>13,}")


def print_datasets(names: list[str] | None = None) -> None:
    """One line per dataset: whether its files were found, and where (or where searched)."""
    from sparta import data as sdata

    for row in sdata.available():
        if names is not None and row["name"] not in names:
            continue
        searched = ", ".join(map(str, row.get("searched", [])))
        if row["found"]:
            where = row.get("path") or row.get("source") or ""
        else:
            where = f"not found; searched: {searched}"
        print(f"{row['name']:<14} {'yes' if row['found'] else 'no':<4} {where}")
