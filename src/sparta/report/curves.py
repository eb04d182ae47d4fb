"""Learning-curve plots of a run folder's ``metrics.jsonl``."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sparta.runs import Run  # noqa: E402


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
    fig.tight_layout()
    path = Path(out) if out else run.file("curves.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
