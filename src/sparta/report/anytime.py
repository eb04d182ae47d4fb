"""Anytime curves (APP and its baselines), from ``sparta anytime`` runs (``summary.json``
curves): test accuracy after each mega-batch, a markdown table and a plot."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from sparta.io import atomic_write_text
from sparta.report.figures import plt, save
from sparta.runs import Run

LABELS = {"app": "APP (progressive)", "oneshot": "one-shot (Anytime OSP)", "dense": "dense"}


def anytime_table(curves: Mapping[str, Sequence[dict[str, Any]]]) -> str:
    """A markdown table: one row per mega-batch, test accuracy (and sparsity) per branch."""
    branches = list(curves)
    lines = [
        "| mega-batch | n train | " + " | ".join(f"{b} acc (sparsity)" for b in branches) + " |",
        "|---:|---:|" + "---:|" * len(branches),
    ]
    first = curves[branches[0]]
    for i, row in enumerate(first):
        cells = []
        for b in branches:
            r = curves[b][i]
            cells.append(f"{r['test_acc']:.4f} ({100 * r['sparsity']:.1f}%)")
        lines.append(f"| {row['megabatch']} | {row['n_train']} | " + " | ".join(cells) + " |")
    means = [sum(r["test_acc"] for r in curves[b]) / len(curves[b]) for b in branches]
    lines.append("| mean | | " + " | ".join(f"{m:.4f}" for m in means) + " |")
    return "\n".join(lines) + "\n"


def plot_anytime(
    curves: Mapping[str, Sequence[dict[str, Any]]], path: str | os.PathLike, title: str = ""
) -> Path:
    """Test accuracy after each mega-batch, one line per branch (the anytime curve)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = {"app": "-o", "oneshot": "--s", "dense": ":^"}
    for branch, rows in curves.items():
        xs = [r["megabatch"] for r in rows]
        ys = [r["test_acc"] for r in rows]
        ax.plot(xs, ys, styles.get(branch, "-"), label=LABELS.get(branch, branch), markersize=4)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("mega-batches seen")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save(fig, path)


def plot_anytime_run(run: Run) -> list[Path]:
    """``anytime.md`` and ``anytime.png`` of an anytime run (from its summary's curves)."""
    curves = run.read_summary().get("curves")
    if not curves:
        raise ValueError(f"{run.summary_file} has no curves: not a finished anytime run")
    config = run.read_config()
    md = run.file("anytime.md")
    atomic_write_text(md, anytime_table(curves))
    title = (
        f"{config.get('model')} on {config.get('dataset')}, {config.get('megabatches')} "
        f"mega-batches, target sparsity {config.get('sparsity')}"
    )
    return [md, plot_anytime(curves, run.file("anytime.png"), title=title)]
