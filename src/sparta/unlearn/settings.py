"""Unlearning settings: which training samples to forget, which to retain, and the test set.

A forget spec is ``random:F`` (a seeded fraction ``F`` in (0, 1) of the training set) or
``class:C`` / ``class:C1,C2`` (every sample of those classes). The forget and retain sets
are disjoint and together cover the training set; positions refer to that set, original
indices (``ImageDataset.indices``) are what :meth:`Setting.save` writes for auditing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sparta.data import ImageDataset, as_dataset
from sparta.io import atomic_write_text

SETS_FILE = "sets.json"


@dataclass(frozen=True)
class ForgetSpec:
    """A parsed forget spec: ``kind`` is ``random`` (with ``fraction``) or ``class``."""

    kind: str
    fraction: float = 0.0
    classes: tuple[int, ...] = ()

    def __str__(self) -> str:
        if self.kind == "random":
            return f"random:{self.fraction:g}"
        return "class:" + ",".join(str(c) for c in self.classes)


def parse_forget(spec: str | ForgetSpec) -> ForgetSpec:
    """Parse ``random:0.1`` or ``class:3`` / ``class:3,5``; anything else is a ValueError."""
    if isinstance(spec, ForgetSpec):
        return spec
    kind, _, value = str(spec).strip().partition(":")
    allowed = "expected random:F with F in (0, 1), or class:C[,C...]"
    if kind == "random":
        try:
            fraction = float(value)
        except ValueError:
            raise ValueError(f"forget spec {spec!r} is not allowed; {allowed}") from None
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"forget fraction {value} is not allowed; expected a number in (0, 1)")
        return ForgetSpec("random", fraction=fraction)
    if kind == "class":
        try:
            classes = tuple(sorted({int(c) for c in value.split(",") if c.strip()}))
        except ValueError:
            raise ValueError(f"forget spec {spec!r} is not allowed; {allowed}") from None
        if not classes:
            raise ValueError(f"forget spec {spec!r} names no class; {allowed}")
        return ForgetSpec("class", classes=classes)
    raise ValueError(f"forget spec {spec!r} is not allowed; {allowed}")


@dataclass
class Setting:
    """A training set split into forget and retain parts, plus the test set."""

    train: ImageDataset
    test: ImageDataset
    forget_pos: torch.Tensor  # positions in ``train``, sorted
    retain_pos: torch.Tensor
    spec: ForgetSpec

    @property
    def forget(self) -> ImageDataset:
        return self.train.subset(self.forget_pos)

    @property
    def retain(self) -> ImageDataset:
        return self.train.subset(self.retain_pos)

    def to_dict(self) -> dict[str, Any]:
        """The spec, dataset and the three index lists (original dataset indices)."""
        return {
            "forget_spec": str(self.spec),
            "dataset": self.train.name,
            "n_train": len(self.train),
            "forget": self.train.indices[self.forget_pos].tolist(),
            "retain": self.train.indices[self.retain_pos].tolist(),
            "test": self.test.indices.tolist(),
        }

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``sets.json`` (forget/retain/test index lists) into ``folder``."""
        path = Path(folder) / SETS_FILE
        return atomic_write_text(path, json.dumps(self.to_dict(), separators=(",", ":")) + "\n")


def make_setting(
    train: ImageDataset, test: ImageDataset, forget: str | ForgetSpec, seed: int = 0
) -> Setting:
    """Split ``train`` by the forget spec (random forgetting is seeded by ``seed``); ``train``
    and ``test`` may be any dataset or DataLoader of ``(x, y)``."""
    train = as_dataset(train)
    test = as_dataset(test, split="test", info=train.info)
    spec = parse_forget(forget)
    n = len(train)
    if spec.kind == "random":
        k = int(round(spec.fraction * n))
        if k == 0:
            raise ValueError(
                f"forget fraction {spec.fraction:g} of {n} training samples forgets nothing; "
                "use a larger fraction"
            )
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        forget_pos = perm[:k].sort().values
    else:
        bad = [c for c in spec.classes if not 0 <= c < train.num_classes]
        if bad:
            raise ValueError(
                f"class {bad[0]} does not exist; allowed 0..{train.num_classes - 1} ({train.name})"
            )
        hit = torch.isin(train.y.cpu(), torch.tensor(spec.classes))
        forget_pos = hit.nonzero().flatten()
        if len(forget_pos) == 0:
            raise ValueError(f"the training set holds no sample of class {spec.classes}")
    keep = torch.ones(n, dtype=torch.bool)
    keep[forget_pos] = False
    retain_pos = keep.nonzero().flatten()
    if len(retain_pos) == 0:
        raise ValueError(
            f"forget spec {spec} leaves the retain set empty ({n} training samples); forget less"
        )
    return Setting(train, test, forget_pos, retain_pos, spec)


def read_sets(folder: str | os.PathLike) -> dict[str, Any]:
    """Read a run folder's ``sets.json``; a missing file is a FileNotFoundError."""
    path = Path(folder) / SETS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {SETS_FILE} in {folder}: not an unlearning run folder")
    return json.loads(path.read_text())
