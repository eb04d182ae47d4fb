"""Cells of the report card: one model per (variant, sparsity), one score per pillar.

A cell is a folder ``cells/<variant>-<sparsity:.2f>/`` holding ``model.safetensors`` and
``summary.json`` (written last: its presence means the model is done) and one
``<pillar>.json`` per scored pillar (written atomically). :func:`run_cell` computes one cell
from a plain dict, so the same function runs in-process, in a process pool or on Ray.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparta.experiments.card.options import CardOptions

log = logging.getLogger(__name__)

DENSE = "dense"
MODEL_CELL = "model"


def cell_name(variant: str, sparsity: float) -> str:
    """The folder name of a (variant, sparsity) cell, e.g. ``gmp-0.90``."""
    return f"{variant}-{sparsity:.2f}"


def cell_seed(seed: int, variant: str, sparsity: float, pillar: str = MODEL_CELL) -> int:
    """A seed that depends only on the card seed and the cell's name (not order/executor)."""
    blob = f"{seed}/{variant}/{sparsity:.4f}/{pillar}".encode()
    return int(hashlib.sha256(blob).hexdigest()[:8], 16) % (2**31 - 1)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when missing or torn."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@dataclass
class PillarScore:
    """What a pillar scorer returns for one model."""

    metrics: dict[str, Any]
    description: str
    warnings: list[str] = field(default_factory=list)


class CellContext:
    """What every cell of one card shares: its folder, options, data and dense model.

    Data and the dense model are loaded lazily and kept for the life of the process (a pool
    worker or Ray worker reuses them across cells).
    """

    def __init__(self, folder: str | Path, options: CardOptions) -> None:
        self.folder = Path(folder)
        self.options = options
        self._splits: Any = None
        self._dense: nn.Module | None = None

    def cell_dir(self, variant: str, sparsity: float) -> Path:
        return self.folder / "cells" / cell_name(variant, sparsity)

    def train_config(self, epochs: int, seed: int, lr: float | None = None) -> Any:
        """The TrainConfig of a (re)training step of a recipe (no validation split)."""
        from sparta.train import TrainConfig

        o = self.options
        width = 1.0
        if self._dense is not None or self.dense_file.is_file():
            from sparta.models import spec_of

            width = float(spec_of(self.dense()).get("width", 1.0))
        return TrainConfig(
            dataset=o.dataset,
            model=o.model,
            width=width,
            epochs=epochs,
            lr=lr or o.lr,
            batch_size=o.batch_size,
            train_subset=o.train_subset,
            test_subset=o.test_subset,
            val_fraction=0.0,
            best_metric="",
            seed=seed,
            keep_checkpoints=1,
        )

    def splits(self) -> Any:
        """Train (``train_subset`` of it) and test (``test_subset``) sets of the card."""
        if self._splits is None:
            from sparta.train import load_splits

            cfg = self.train_config(1, self.options.seed)
            self._splits = load_splits(cfg)
        return self._splits

    @property
    def dense_file(self) -> Path:
        return self.cell_dir(DENSE, 0.0) / "model.safetensors"

    def dense(self) -> nn.Module:
        """A fresh copy of the dense cell's model."""
        if self._dense is None:
            from sparta.io import load

            self._dense = load(self.dense_file)
        return copy.deepcopy(self._dense)

    def fresh(self, seed: int) -> nn.Module:
        """A newly initialised model of the dense model's architecture."""
        from sparta.models import from_spec, spec_of

        torch.manual_seed(seed)
        return from_spec(spec_of(self.dense()))

    def fit(
        self,
        model: nn.Module,
        epochs: int,
        seed: int,
        callbacks: list[Any] | tuple[Any, ...] = (),
        objective: Any = None,
        lr: float | None = None,
    ) -> nn.Module:
        """Train ``model`` in place for ``epochs`` on the card's training set."""
        from sparta.train import Trainer

        if epochs <= 0:
            return model
        torch.manual_seed(seed)
        cfg = self.train_config(epochs, seed, lr)
        trainer = Trainer(
            model,
            self.splits().train,
            cfg,
            objective=objective,
            callbacks=list(callbacks),
            quiet=True,
        )
        trainer.fit()
        return trainer.model.eval()


_CONTEXTS: dict[tuple[str, str, int], CellContext] = {}


def context(folder: str | Path, options: dict[str, Any]) -> CellContext:
    """The process-wide context of a card folder (reused by every cell this process runs)."""
    dense = Path(folder) / "cells" / cell_name(DENSE, 0.0) / "model.safetensors"
    stamp = dense.stat().st_mtime_ns if dense.is_file() else 0
    # the dense model's time stamp is part of the key: an overwritten card reloads it
    key = (str(folder), json.dumps(options, sort_keys=True), stamp)
    if key not in _CONTEXTS:
        _CONTEXTS.clear()
        _CONTEXTS[key] = CellContext(folder, CardOptions.from_dict(options))
    return _CONTEXTS[key]


def task(
    folder: Path, options: CardOptions, variant: str, sparsity: float, pillar: str = MODEL_CELL
) -> dict[str, Any]:
    """The plain, picklable description of one cell."""
    return {
        "folder": str(folder),
        "options": options.to_dict(),
        "variant": variant,
        "sparsity": float(sparsity),
        "pillar": pillar,
    }


def cell_file(folder: Path, variant: str, sparsity: float, pillar: str = MODEL_CELL) -> Path:
    """The file whose presence means the cell is finished."""
    d = Path(folder) / "cells" / cell_name(variant, sparsity)
    return d / ("summary.json" if pillar == MODEL_CELL else f"{pillar}.json")


def is_done(t: dict[str, Any]) -> bool:
    """Whether the cell ``t`` describes is finished (its final file is complete)."""
    path = cell_file(Path(t["folder"]), t["variant"], t["sparsity"], t["pillar"])
    return read_json(path) is not None


def label(t: dict[str, Any]) -> str:
    """A short human name of a cell, e.g. ``gmp 90% / robustness``."""
    base = f"{t['variant']} {t['sparsity']:.0%}" if t["sparsity"] else t["variant"]
    return base if t["pillar"] == MODEL_CELL else f"{base} / {t['pillar']}"


def run_cell(t: dict[str, Any], threads: int = 0) -> dict[str, Any]:
    """Compute the cell ``t`` unless it is finished; returns ``{"computed", "wall_s"}``.

    ``threads`` > 0 sets torch's thread count first (one per pool or Ray worker).
    """
    from sparta.io import save, write_json

    from . import pillars, variants

    if threads:
        torch.set_num_threads(threads)
    if is_done(t):
        return {"computed": False, "wall_s": 0.0, "cell": label(t)}
    ctx = context(t["folder"], t["options"])
    variant, sparsity, pillar = t["variant"], t["sparsity"], t["pillar"]
    seed = cell_seed(ctx.options.seed, variant, sparsity, pillar)
    out = ctx.cell_dir(variant, sparsity)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if pillar == MODEL_CELL:
        recipe = variants.VARIANTS.get(variant)
        torch.manual_seed(seed)
        model, summary = recipe.obj(ctx, sparsity, seed)
        wall = time.perf_counter() - start
        save(model, out / "model.safetensors", variant=variant, sparsity=sparsity, seed=seed)
        write_json(
            out / "summary.json",
            {"variant": variant, "sparsity": sparsity, "seed": seed, "wall_s": wall, **summary},
        )
    else:
        from sparta.io import load

        entry = pillars.PILLARS.get(pillar)
        model = load(out / "model.safetensors")
        torch.manual_seed(seed)
        score: PillarScore = entry.obj(ctx, model, variant, sparsity, seed)
        wall = time.perf_counter() - start
        write_json(
            out / f"{pillar}.json",
            {
                "pillar": pillar,
                "variant": variant,
                "sparsity": sparsity,
                "seed": seed,
                "metrics": score.metrics,
                "description": score.description,
                "options": {k: getattr(ctx.options, k) for k in entry.meta.get("options", ())},
                "warnings": score.warnings,
                "wall_s": wall,
            },
        )
    log.info("cell %s done in %.1fs", label(t), wall)
    return {"computed": True, "wall_s": wall, "cell": label(t)}
