"""Robust accuracy vs eps, from ``sparta attack`` runs (``summary.json``)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sparta.attacks.evaluate import RobustReport
from sparta.report.figures import plt, save
from sparta.runs import Run

PNG = "robust_acc_vs_eps.png"


def _record(r: RobustReport | Mapping[str, Any]) -> dict[str, Any]:
    return r.summary() if isinstance(r, RobustReport) else dict(r)


class _First:
    """The first record that has a key (clean accuracy, suite, ... are the same in all)."""

    def __init__(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.records = records

    def __getitem__(self, key: str) -> Any:
        for r in self.records:
            if key in r:
                return r[key]
        raise ValueError(f"no report has {key!r}; give RobustReport.summary() dicts")


def plot_robust_curve(
    reports: Sequence[RobustReport | Mapping[str, Any]], path: str | os.PathLike, title: str = ""
) -> Path:
    """Robust accuracy vs eps (clean accuracy at eps = 0) as a PNG; returns its path.

    ``reports``: :class:`RobustReport` objects or their ``summary()`` dicts (one per eps); an
    entry with only ``eps`` and ``robust_acc`` adds a point to the worst-case line."""
    if not reports:
        raise ValueError("no reports to plot")
    recs = sorted((_record(r) for r in reports), key=lambda r: r["eps"])
    first = _First(recs)
    eps = [0.0] + [r["eps"] for r in recs if r["eps"] > 0]
    acc = [first["clean_acc"]] + [r["robust_acc"] for r in recs if r["eps"] > 0]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(eps, acc, "-o", label=f"worst case ({first['suite']})")
    names_ = first["attacks"]
    if len(names_) > 1:
        for name in names_[:-1]:
            key = f"robust_acc_{name.replace('-', '_')}"
            ys = [first["clean_acc"]] + [r.get(key, math.nan) for r in recs if r["eps"] > 0]
            ax.plot(eps, ys, "--", alpha=0.6, label=f"after {name}")
    ax.set_xlabel(f"eps ({first['norm']})")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or f"robust accuracy vs eps (n={first['n']})", fontsize=10)
    return save(fig, path)


def plot_attack_run(run: Run) -> list[Path]:
    """``robust_acc_vs_eps.png`` of an attack run: its summary, and its ``curve`` entries
    (each a report summary, or ``eps`` and ``robust_acc``)."""
    summary = run.read_summary()
    if "robust_acc" not in summary:
        raise ValueError(f"{run.summary_file} has no robust_acc: not a finished attack run")
    curve = [c for c in summary.get("curve", []) if c.get("eps") != summary.get("eps")]
    return [plot_robust_curve([summary, *curve], run.file(PNG), title=run.path.name)]
