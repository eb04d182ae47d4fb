"""Class-split datasets: some classes of a dataset, relabelled ``0..k-1``, optionally a
seeded fraction of them (transfer experiments: a source task on classes 0-4, a downstream
task on classes 5-9 with 1% of its data, as in Double-Win tickets, 2206.04762 Sec. 4).

By name, everywhere a dataset name is taken (``--dataset``, run configs)::

    fashion-mnist:classes=0-4                       classes 0..4 (train and test)
    fashion-mnist:classes=5-9:fraction=0.01         1% of the training images of 5..9
    digits:classes=1,3,5:fraction=0.1:seed=2        another seed draws another 10%

``fraction`` subsets the training split only (the test split keeps every image of the
classes), per class (stratified, at least one image per class), deterministically per ``seed``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .base import DatasetInfo, ImageDataset

#: the keys a class-split name may carry after the dataset's name
SPEC_KEYS = ("classes", "fraction", "seed")


@dataclass(frozen=True)
class ClassSpec:
    """A parsed ``base:classes=...[:fraction=...][:seed=...]`` dataset name."""

    base: str
    classes: tuple[int, ...]
    fraction: float = 1.0
    seed: int = 0


def parse_classes(text: str) -> tuple[int, ...]:
    """``"5-9"`` -> (5, 6, 7, 8, 9); ``"0,2,4"`` -> (0, 2, 4); ranges and lists combine."""
    out: list[int] = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        try:
            span = range(int(lo), int(hi) + 1) if dash else [int(lo)]
        except ValueError:
            raise ValueError(
                f"classes={text!r} is not allowed; expected class indices like '5-9' or '0,2,4'"
            ) from None
        if dash and int(hi) < int(lo):
            raise ValueError(f"classes={text!r} is not allowed; a range goes low-high, e.g. '5-9'")
        out += span
    if len(set(out)) != len(out) or not out:
        raise ValueError(f"classes={text!r} is not allowed; expected distinct class indices")
    return tuple(out)


def is_class_spec(name: object) -> bool:
    """Whether ``name`` is a class-split dataset name (``base:classes=...``)."""
    return isinstance(name, str) and ":classes=" in name


def parse_class_spec(name: str) -> ClassSpec:
    """Parse ``base:classes=5-9[:fraction=0.1][:seed=0]``; a bad part raises ValueError."""
    base, _, rest = name.partition(":classes=")  # the base may hold colons (folder:/path)
    parts = f"classes={rest}".split(":")
    values: dict[str, str] = {}
    for part in parts:
        key, eq, value = part.partition("=")
        if not eq or key not in SPEC_KEYS or key in values:
            raise ValueError(
                f"dataset {name!r}: {part!r} is not allowed; expected "
                "'<dataset>:classes=5-9[:fraction=0.1][:seed=0]'"
            )
        values[key] = value
    try:
        fraction = float(values.get("fraction", 1.0))
        seed = int(values.get("seed", 0))
    except ValueError:
        raise ValueError(
            f"dataset {name!r}: fraction must be a number in (0, 1] and seed an integer"
        ) from None
    if not 0 < fraction <= 1:
        raise ValueError(f"dataset {name!r}: fraction={fraction!r} is not in (0, 1]")
    return ClassSpec(base, parse_classes(values["classes"]), fraction, seed)


def class_info(info: DatasetInfo, classes: Sequence[int], name: str | None = None) -> DatasetInfo:
    """``info`` restricted to ``classes`` (relabelled ``0..k-1`` in that order)."""
    bad = [c for c in classes if not 0 <= c < info.num_classes]
    if bad:
        raise ValueError(
            f"class {bad[0]} does not exist in {info.name!r}; allowed 0..{info.num_classes - 1}"
        )
    names = tuple(info.classes[c] for c in classes) if info.classes else ()
    return dataclasses.replace(
        info, name=name or info.name, num_classes=len(classes), classes=names
    )


def class_subset(
    ds: ImageDataset,
    classes: Sequence[int],
    fraction: float = 1.0,
    seed: int = 0,
    name: str | None = None,
) -> ImageDataset:
    """The samples of ``ds`` whose label is in ``classes``, relabelled ``classes[i] -> i``;
    with ``fraction < 1`` a seeded share of each class (``ceil(fraction * n_c)``, so every
    class keeps at least one sample). Original ``indices`` and sample order are kept."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction!r} is not allowed; expected a number in (0, 1]")
    info = class_info(ds.info, classes, name)
    picked = ds.by_class(list(classes))
    if fraction < 1:
        g = torch.Generator().manual_seed(seed)
        keep = []
        for c in classes:  # stratified: the same share of every class
            where = torch.nonzero(picked.y.cpu() == c).flatten()
            n = math.ceil(fraction * len(where))
            keep.append(where[torch.randperm(len(where), generator=g)[:n]])
        picked = picked.subset(torch.cat(keep).sort().values)
    relabel = torch.full((ds.num_classes,), -1, dtype=torch.long)
    relabel[list(classes)] = torch.arange(len(classes))
    y = relabel.to(picked.y.device)[picked.y]
    return ImageDataset(picked.x, y, info, picked.split, picked.indices)
