"""Certified accuracy vs radius, from randomized-smoothing runs (per-example JSON)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from sparta.certify.smoothing import SmoothingReport
from sparta.report.figures import plt, save
from sparta.runs import Run

EXAMPLES = "smoothing_examples.json"  # what ``certify_dataset(examples=...)`` writes in a run
PNG = "certified_acc_vs_radius.png"


def _report(r: SmoothingReport | Mapping[str, Any]) -> SmoothingReport:
    return r if isinstance(r, SmoothingReport) else SmoothingReport.from_dict(r)


def plot_certified_curve(
    reports: SmoothingReport | Mapping[str, Any] | Sequence[SmoothingReport | Mapping[str, Any]],
    path: str | os.PathLike,
    max_radius: float | None = None,
    title: str = "",
) -> Path:
    """Certified accuracy vs L2 radius (one line per report, e.g. per sigma) as a PNG.

    ``reports``: :class:`SmoothingReport` objects or their ``to_dict()`` dicts."""
    single = isinstance(reports, (SmoothingReport, Mapping))
    reports = [_report(r) for r in ([reports] if single else reports)]
    if not reports:
        raise ValueError("no smoothing reports to plot")
    top = max_radius or max(max(float(r.radii.max()), r.sigma * 4) for r in reports)
    grid = torch.linspace(0, top, 200).tolist()
    fig, ax = plt.subplots(figsize=(5, 4))
    for r in reports:
        ax.plot(grid, r.curve(grid), label=f"sigma={r.sigma:g}")
    ax.set_xlabel("L2 radius (pixels)")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    n_ex = len(reports[0].labels)
    ax.set_title(title or f"randomized smoothing (n={reports[0].n}, {n_ex} images)", fontsize=10)
    return save(fig, path)


def plot_certify_run(run: Run) -> list[Path]:
    """``certified_acc_vs_radius.png`` of a ``certify --method smooth`` run (from its
    ``smoothing_examples.json``); other certification methods draw nothing."""
    examples = run.file(EXAMPLES)
    if not examples.is_file():
        if run.read_config().get("method") == "smooth":
            raise FileNotFoundError(f"{examples} not found: the run kept no per-example radii")
        return []
    return [plot_certified_curve(json.loads(examples.read_text()), run.file(PNG))]
