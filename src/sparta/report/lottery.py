"""Lottery-ticket levels (IMP), from ``sparta lottery`` runs (``summary.json`` levels)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.ticker import FixedLocator, NullLocator

from sparta.io import atomic_write_text
from sparta.report.figures import plt, save
from sparta.runs import Run
from sparta.sparsity.lottery import ACC_KEYS


def levels_table(levels: Sequence[dict[str, Any]]) -> str:
    """A markdown table: level, % weights remaining, ticket and control test accuracy."""
    keys = [k for k in ACC_KEYS.values() if any(k in r for r in levels)]
    names = {"test_acc": "ticket", "reinit_acc": "reinit", "random_acc": "random mask"}
    lines = [
        "| level | remaining % | " + " | ".join(names[k] for k in keys) + " |",
        "|---:|---:|" + "---:|" * len(keys),
    ]
    for r in levels:
        accs = " | ".join(f"{r[k]:.4f}" if k in r else "-" for k in keys)
        lines.append(f"| {r['level']} | {100 * r['remaining']:.2f} | {accs} |")
    return "\n".join(lines) + "\n"


def plot_levels(levels: Sequence[dict[str, Any]], path: str | os.PathLike, title: str = "") -> Path:
    """Test accuracy vs % weights remaining (log axis, decreasing to the right)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = {"test_acc": "-o", "reinit_acc": "--s", "random_acc": ":^"}
    labels = {"test_acc": "ticket (rewound)", "reinit_acc": "reinit", "random_acc": "random mask"}
    for key, style in styles.items():
        pts = [(100 * r["remaining"], r[key]) for r in levels if key in r]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, style, label=labels[key], markersize=4)
    ax.axhline(levels[0]["test_acc"], color="gray", lw=0.8, ls="--", label="dense")
    ax.set_xscale("log")
    ticks = [100 * r["remaining"] for r in levels]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{t:.3g}" for t in ticks], fontsize=7)
    ax.set_xlim(max(ticks) * 1.1, min(ticks) / 1.1)  # reversed, as in the paper
    ax.set_xlabel("% of prunable weights remaining")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save(fig, path)


def plot_lottery_run(run: Run) -> list[Path]:
    """``levels.md`` and ``levels.png`` of a lottery run (from its summary's ``levels``)."""
    levels = run.read_summary().get("levels")
    if not levels:
        raise ValueError(f"{run.summary_file} has no levels: not a finished lottery run")
    config = run.read_config()
    md = run.file("levels.md")
    atomic_write_text(md, levels_table(levels))
    title = f"{config.get('model')} on {config.get('dataset')}"
    return [md, plot_levels(levels, run.file("levels.png"), title=title)]
