"""Certification plots: certified accuracy vs radius of randomized-smoothing runs (from their
per-example JSON), and the verified / unknown / falsified / wrong split of bound-method runs
(IBP, CROWN, alpha-CROWN, BaB; from their ``summary.json``)."""

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
VERIFIED_PNG = "verified_acc.png"  # bound methods
#: the outcome of each example, in the order the bar stacks them, and its colour
STATUSES = {
    "verified": "tab:green",
    "unknown": "tab:gray",
    "falsified": "tab:red",
    "wrong": "black",
}


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


def status_fractions(summary: Mapping[str, Any]) -> dict[str, float]:
    """The fraction of the ``n`` examples per outcome (verified, unknown, falsified, wrong)
    of a bound-method summary (what :func:`plot_verified` draws)."""
    missing = [k for k in ("n", *STATUSES) if k not in summary]
    if missing:
        raise ValueError(
            f"certification summary has no {', '.join(missing)}: not a bound-method run "
            "(ibp, crown, alpha-crown, bab)"
        )
    n = max(1, int(summary["n"]))
    return {k: int(summary[k]) / n for k in STATUSES}


def plot_verified(summary: Mapping[str, Any], path: str | os.PathLike, model: str = "") -> Path:
    """One stacked bar of the examples' outcomes (verified | unknown | falsified | wrong);
    verified accuracy is the green part, the upper bound everything left of the red. The
    title names ``model`` (when given), the method, eps and norm and the verified accuracy."""
    fractions = status_fractions(summary)
    fig, ax = plt.subplots(figsize=(7, 2.2))
    left = 0.0
    for status, frac in fractions.items():
        count = int(summary[status])
        ax.barh([0], [frac], left=left, color=STATUSES[status], label=f"{status} ({count})")
        if frac >= 0.08:
            colour = "white" if status in ("wrong", "falsified", "verified") else "black"
            ax.text(left + frac / 2, 0, f"{frac:.0%}", ha="center", va="center", color=colour)
        left += frac
    ax.set_xlim(0, 1)
    ax.set_yticks([])
    ax.set_xlabel(f"fraction of {summary['n']} test examples")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.45), ncol=4, fontsize=8)
    eps = summary.get("eps")
    title = f"{model}: " if model else ""
    if isinstance(eps, (int, float)):
        title += f"{summary.get('method', '?')} at eps={eps:g} {summary.get('norm', '')}, "
    ax.set_title(title + f"verified acc {fractions['verified']:.1%}", fontsize=10)
    return save(fig, path)


def plot_certify_run(run: Run) -> list[Path]:
    """``certified_acc_vs_radius.png`` of a ``certify --method smooth`` run (from its
    ``smoothing_examples.json``), ``verified_acc.png`` of a bound-method run (from its
    ``summary.json``: verified / unknown / falsified / wrong)."""
    config = run.read_config()
    examples = run.file(EXAMPLES)
    if not examples.is_file():
        if config.get("method") == "smooth":
            raise FileNotFoundError(f"{examples} not found: the run kept no per-example radii")
        model = str(config.get("ckpt") or "")
        return [plot_verified(run.read_summary(), run.file(VERIFIED_PNG), model=model)]
    return [plot_certified_curve(json.loads(examples.read_text()), run.file(PNG))]
