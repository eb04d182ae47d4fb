"""Tables and plots of run folders: every figure is drawn from what a run wrote
(``config.yaml``, ``summary.json``, ``metrics.jsonl`` and its data files), so any run can be
re-plotted later without re-running it: ``plot_run(path)``.

Modules: ``curves`` (learning curves), ``attacks`` (robust accuracy vs eps), ``certify``
(certified accuracy vs radius), ``lottery`` (IMP levels), ``unlearn`` (the unlearning
table), ``triggers`` (recovered backdoor triggers).
"""

from sparta.report.curves import plot_learning_curves
from sparta.report.runs import PLOTTERS, plot_run

__all__ = ["PLOTTERS", "plot_learning_curves", "plot_run"]
