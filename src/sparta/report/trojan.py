"""Trojan-ticket detection (``sparta backdoor detect`` runs): clean accuracy, ASR and the
Trojan score per IMP level, drawn from the run folder's ``summary.json`` (``levels``)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sparta.runs import Run


def plot_detection(
    levels: Sequence[dict[str, Any]], path: str | os.PathLike, title: str = ""
) -> Path:
    """Clean accuracy, ASR (when known) and the Trojan score vs % weights remaining."""
    from sparta.report.figures import plt, save

    xs = [100 * r["remaining"] for r in levels]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, style, label in (("test_acc", "-o", "clean accuracy"), ("asr", "-s", "ASR")):
        if all(key in r for r in levels):
            ax.plot(xs, [r[key] for r in levels], style, label=label, markersize=4)
    ax.set_xscale("log")
    ax.set_xlim(max(xs) * 1.1, min(xs) / 1.1)  # sparser to the right
    ax.set_xlabel("% of prunable weights remaining")
    ax.set_ylabel("accuracy / ASR")
    ax2 = ax.twinx()
    ax2.plot(xs, [r["score"] for r in levels], "--^", color="tab:red", label="Trojan score")
    ax2.set_ylabel("Trojan score (error barrier)")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return save(fig, path)


def plot_detection_run(run: Run | str | os.PathLike, title: str | None = None) -> list[Path]:
    """Re-draw ``levels.png`` of a ``backdoor detect`` run folder from its ``summary.json``
    (title: the suspect's model from ``config.yaml`` when recorded); returns the files."""
    run = run if isinstance(run, Run) else Run(run)
    summary_file = run.path / "summary.json"
    if not summary_file.is_file():
        raise FileNotFoundError(f"{summary_file} not found: not a finished detection run")
    levels = json.loads(summary_file.read_text()).get("levels")
    if not levels:
        raise ValueError(f"{summary_file} holds no 'levels'; it is not a detection run")
    if title is None:
        config = run.read_config() if run.config_file.is_file() else {}
        title = str(config.get("model", ""))
    return [plot_detection(levels, run.file("levels.png"), title=title)]
