"""Recovered backdoor triggers, from ``sparta backdoor recover`` runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sparta.backdoor.recover import RecoveryResult
from sparta.report.figures import plt, save
from sparta.runs import Run

TRIGGERS = "triggers.safetensors"  # what ``RecoveryResult.save`` writes in a run
PNG = "trigger.png"


ROWS = ("mask m", "trigger m * p")  # the row labels of the trigger figure


def trigger_figure(result: RecoveryResult, title: str = "") -> Any:
    """The figure :func:`save_trigger_png` writes: one column per label (titled with the
    label, ``*`` on the target, and the mask's L1 norm), rows labelled by :data:`ROWS`."""
    k = len(result.labels)
    fig, axes = plt.subplots(2, k, figsize=(1.3 * k + 0.5, 3.0), squeeze=False)
    for i, label in enumerate(result.labels):
        m, p = result.masks[i], result.patterns[i]
        img = (m * p).permute(1, 2, 0).squeeze(-1).clamp(0, 1).numpy()
        mark = " *" if label == result.target else ""
        axes[0][i].imshow(m.numpy(), cmap="gray", vmin=0, vmax=1)
        axes[0][i].set_title(f"{label}{mark}\nL1 {result.norms[i]:.1f}", fontsize=7)
        axes[1][i].imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
        for ax in (axes[0][i], axes[1][i]):
            ax.set_xticks([])
            ax.set_yticks([])
    for row, name in enumerate(ROWS):
        axes[row][0].set_ylabel(name, fontsize=8)
    fig.suptitle(title or f"recovered triggers (target: {result.target})", fontsize=9)
    return fig


def save_trigger_png(result: RecoveryResult, path: str | os.PathLike, title: str = "") -> Path:
    """Masks (top row) and masked patterns ``m * p`` (bottom row) per label, rows labelled;
    the target is marked."""
    return save(trigger_figure(result, title), path)


def plot_recover_run(run: Run) -> list[Path]:
    """``trigger.png`` of a trigger-recovery run (from its ``triggers.safetensors``)."""
    return [save_trigger_png(RecoveryResult.load(run.file(TRIGGERS)), run.file(PNG))]
