"""``bench``: every method on one forget setting, dense and pruned, as a table and a plot.

At each sparsity, Retrain on the retain set runs first and is the reference of that
sparsity's ``avg_gap`` (2304.04934 compares each sparsity with Retrain at that sparsity);
``rte_ratio`` is a method's RTE over Retrain's.
"""

from __future__ import annotations

import copy
import csv
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from sparta.data import ImageDataset
from sparta.train import TrainConfig
from sparta.unlearn.api import prune_model, run
from sparta.unlearn.methods import get_method, method_names
from sparta.unlearn.metrics import GAP_KEYS
from sparta.unlearn.options import UnlearnOptions
from sparta.unlearn.settings import ForgetSpec, Setting, make_setting

log = logging.getLogger(__name__)

COLUMNS = ("method", "sparsity", "ua", "ra", "ta", "mia_efficacy", "avg_gap", "rte_s", "rte_ratio")


def bench(
    model: nn.Module,
    train: ImageDataset,
    test: ImageDataset,
    forget: str | ForgetSpec = "random:0.1",
    methods: Sequence[str] | None = None,
    prune: float = 0.95,
    options: UnlearnOptions | None = None,
    train_config: TrainConfig | None = None,
    setting: Setting | None = None,
    quiet: bool = True,
) -> list[dict[str, Any]]:
    """Rows of :data:`COLUMNS` for ``methods`` (default all) dense and, if ``prune`` > 0,
    pruned to that sparsity (once, shared by the methods; see ``prune_model``); Retrain is
    always run as the reference."""
    opts = options or UnlearnOptions()
    names = [get_method(m).name for m in (methods or method_names())]
    names = ["retrain"] + [m for m in dict.fromkeys(names) if m != "retrain"]
    setting = setting or make_setting(train, test, forget, seed=opts.seed)
    rows = []
    for sparsity in [0.0] + ([float(prune)] if prune > 0 else []):
        start = copy.deepcopy(model)
        if sparsity > 0:  # the sparse original model, shared by every method
            prune_model(start, sparsity, opts, train, train_config)
        reference: dict[str, Any] | None = None
        for name in names:
            res = run(
                start, train, test, name, options=opts,
                train_config=train_config, reference=reference, setting=setting, quiet=quiet,
            )  # fmt: skip
            if reference is None:
                reference = {k: res.summary[k] for k in (*GAP_KEYS, "rte_s")}
                res.summary["avg_gap"] = 0.0
            row = {"method": name, **res.summary, "sparsity": sparsity}
            row["rte_ratio"] = row["rte_s"] / max(reference["rte_s"], 1e-12)
            rows.append({k: row[k] for k in COLUMNS})
            log.info("%s", " ".join(f"{k}={v}" for k, v in rows[-1].items()))
    return rows


def format_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The table in markdown, accuracies and MIA in percent as the papers print them."""
    head = "| method | sparsity | UA % | RA % | TA % | MIA % | Avg. Gap | RTE s | RTE / Retrain |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        pct = [f"{100 * r[k]:.2f}" for k in ("ua", "ra", "ta", "mia_efficacy")]
        lines.append(
            f"| {r['method']} | {100 * r['sparsity']:.0f}% | {' | '.join(pct)} | "
            f"{100 * r['avg_gap']:.2f} | {r['rte_s']:.2f} | {r['rte_ratio']:.3f} |"
        )
    return "\n".join(lines)


def write_table(rows: Sequence[dict[str, Any]], folder: str | os.PathLike) -> dict[str, Path]:
    """Write ``table.md``, ``table.csv`` and ``table.png`` (Avg. Gap and RTE per method)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"md": folder / "table.md", "csv": folder / "table.csv", "png": folder / "table.png"}
    paths["md"].write_text(format_markdown(rows) + "\n")
    with paths["csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    _plot(rows, paths["png"])
    return paths


def _plot(rows: Sequence[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in rows))
    sparsities = sorted({r["sparsity"] for r in rows})
    width = 0.8 / len(sparsities)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in (
        (axes[0], "avg_gap", "Avg. Gap to Retrain (%)"),
        (axes[1], "rte_s", "RTE (s)"),
    ):
        for j, s in enumerate(sparsities):
            by = {r["method"]: r for r in rows if r["sparsity"] == s}
            xs = [i + (j - (len(sparsities) - 1) / 2) * width for i in range(len(methods))]
            ys = [by[m][key] * (100 if key == "avg_gap" else 1) if m in by else 0 for m in methods]
            ax.bar(xs, ys, width, label=f"sparsity {100 * s:.0f}%")
        ax.set_xticks(range(len(methods)), methods)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        ax.legend()
    axes[1].set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
