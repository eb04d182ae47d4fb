"""Learning-curve plots of a run folder's ``metrics.jsonl``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sparta.report.figures import plt, save
from sparta.runs import Run

#: the curves drawn per panel: metric prefix, legend label, line style
SPLITS = (
    ("train", "train", "-o"),
    ("val", "val", "-s"),
    ("train_robust", "train robust", "-^"),
    ("val_robust", "val robust", "-v"),  # adversarial training: defenses.RobustValidation
)


def curve_series(rows: list[dict[str, Any]]) -> dict[str, dict[str, tuple[list, list]]]:
    """What :func:`plot_learning_curves` draws: ``{panel: {label: (epochs, values)}}`` for
    the panels ``loss`` and ``acc``, one series per split logged in at least one epoch
    (``val_robust_acc`` of adversarial training included), epochs without it skipped."""
    out: dict[str, dict[str, tuple[list, list]]] = {}
    for key in ("loss", "acc"):
        panel = out.setdefault(key, {})
        for split, label, _ in SPLITS:
            points = [(r["epoch"], r[f"{split}_{key}"]) for r in rows if f"{split}_{key}" in r]
            if points:
                panel[label] = ([e for e, _ in points], [v for _, v in points])
    return out


def plot_learning_curves(run_dir: str | os.PathLike, out: str | None = None) -> Path:
    """Plot loss and accuracy per epoch (train, validation and, for adversarial training,
    their robust accuracies) to ``curves.png``."""
    run = Run(run_dir)
    rows = [r for r in run.metrics() if "epoch" in r and "train_loss" in r]
    if not rows:
        raise ValueError(f"no epoch metrics in {run.metrics_file} to plot")
    series = curve_series(rows)
    styles = {label: style for _, label, style in SPLITS}
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, ax in (("loss", ax_loss), ("acc", ax_acc)):
        for label, (epochs, values) in series[key].items():
            ax.plot(epochs, values, styles[label], label=label, markersize=3)
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


def plot_shrinking(run_dir: str | os.PathLike, out: str | None = None) -> Path:
    """Channels left and time per training step, per epoch, of a run whose model shrank
    while it trained (``--dst chase``: metrics ``channels`` and ``step_time_s``) to
    ``shrink.png``."""
    run = Run(run_dir)
    rows = [r for r in run.metrics() if "channels" in r and "step_time_s" in r]
    if not rows:
        raise ValueError(f"no per-epoch channel counts in {run.metrics_file} to plot")
    epochs = [r["epoch"] for r in rows]
    fig, (ax_c, ax_t) = plt.subplots(1, 2, figsize=(10, 4))
    ax_c.plot(epochs, [r["channels"] for r in rows], "-o", markersize=3)
    ax_c.set_ylabel("channels left")
    ax_t.plot(epochs, [1e3 * r["step_time_s"] for r in rows], "-o", markersize=3)
    ax_t.set_ylabel("time per training step (ms)")
    for ax in (ax_c, ax_t):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{run.path.name}: the model shrinks while it trains")
    return save(fig, Path(out) if out else run.file("shrink.png"))


def plot_curves_run(run: Run) -> list[Path]:
    """``curves.png`` of a run that trained epochs (and ``shrink.png`` when its model
    shrank while training); none for one that did not (a prune run without fine-tuning)."""
    rows = run.metrics()
    if not any("epoch" in r and "train_loss" in r for r in rows):
        return []
    paths = [plot_learning_curves(run.path)]
    if any("channels" in r and "step_time_s" in r for r in rows):
        paths.append(plot_shrinking(run.path))
    return paths
