"""Learning-curve plots of a run folder's ``metrics.jsonl``."""

from __future__ import annotations

import os
from pathlib import Path

from sparta.report.figures import plt, save
from sparta.runs import Run


def plot_learning_curves(run_dir: str | os.PathLike, out: str | None = None) -> Path:
    """Plot loss and accuracy per epoch (train and validation) to ``curves.png``."""
    run = Run(run_dir)
    rows = [r for r in run.metrics() if "epoch" in r and "train_loss" in r]
    if not rows:
        raise ValueError(f"no epoch metrics in {run.metrics_file} to plot")
    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax in (("loss", ax_loss), ("acc", ax_acc)):
        splits = (("train", "-o"), ("val", "-s"), ("train_robust", "-^"), ("val_robust", "-v"))
        for split, style in splits:
            values = [r.get(f"{split}_{key}") for r in rows]
            if all(v is not None for v in values):
                ax.plot(epochs, values, style, label=split, markersize=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    summary = run.read_summary()
    title = run.path.name
    if "test_acc" in summary:
        title += f"  (test acc {summary['test_acc']:.4f})"
    fig.suptitle(title)
    return save(fig, Path(out) if out else run.file("curves.png"))


def plot_curves_run(run: Run) -> list[Path]:
    """``curves.png`` of a run that trained epochs; none for one that did not (a prune run
    without fine-tuning)."""
    if not any("epoch" in r and "train_loss" in r for r in run.metrics()):
        return []
    return [plot_learning_curves(run.path)]
