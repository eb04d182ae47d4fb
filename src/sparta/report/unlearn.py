"""The unlearning table (Avg. Gap and RTE per method and sparsity), from ``unlearn-bench``
runs (``summary.json`` rows) or rows of :func:`sparta.experiments.prune_unlearn.unlearn_bench`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sparta.experiments.prune_unlearn import COLUMNS
from sparta.io import atomic_path, atomic_write_text
from sparta.report.figures import plt, save
from sparta.runs import Run


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
    atomic_write_text(paths["md"], format_markdown(rows) + "\n")
    with atomic_path(paths["csv"]) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    _plot(rows, paths["png"])
    return paths


def _plot(rows: Sequence[dict[str, Any]], path: Path) -> None:
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
    save(fig, path)


def plot_unlearn_bench_run(run: Run) -> list[Path]:
    """``table.md``, ``table.csv`` and ``table.png`` of an unlearn-bench run."""
    rows = run.read_summary().get("rows")
    if not rows:
        raise ValueError(f"{run.summary_file} has no rows: not a finished unlearn-bench run")
    return list(write_table(rows, run.path).values())
