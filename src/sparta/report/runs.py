"""``plot_run``: re-draw every table and plot of a run folder from what the run recorded."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from sparta.runs import Run

# the command recorded in config.yaml -> "module:function" that draws its figures from the
# Run (imported on use, so `import sparta.report` loads no pillar); a command that draws
# nothing (eval, export, unlearn, backdoor-remove, ...) is absent and gives []
PLOTTERS: dict[str, str] = {
    "train": "sparta.report.curves:plot_curves_run",
    "prune": "sparta.report.curves:plot_curves_run",
    "lottery-unit": "sparta.report.curves:plot_curves_run",
    "lottery": "sparta.report.lottery:plot_lottery_run",
    "attack": "sparta.report.attacks:plot_attack_run",
    "certify": "sparta.report.certify:plot_certify_run",
    "unlearn-bench": "sparta.report.unlearn:plot_unlearn_bench_run",
    "backdoor-recover": "sparta.report.triggers:plot_recover_run",
    "backdoor-detect": "sparta.report.trojan:plot_detection_run",
    "anytime": "sparta.report.anytime:plot_anytime_run",
    "anytime-unit": "sparta.report.curves:plot_curves_run",
}


def plot_run(path: str | os.PathLike) -> list[Path]:
    """Re-draw the tables and plots of the run folder ``path`` by its recorded command
    (``config.yaml``'s ``command``); returns the files written (none for a command that
    draws nothing). A folder without ``config.yaml`` is a FileNotFoundError."""
    run = Run(path)
    if not run.config_file.is_file():
        raise FileNotFoundError(f"{run.config_file} not found: {path} is not a run folder")
    command = run.read_config().get("command")
    if not command:
        raise ValueError(f"{run.config_file} records no command; cannot tell how to plot it")
    target = PLOTTERS.get(str(command))
    if target is None:
        return []
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)(run)
