"""Tables and plots of run folders."""

from sparta.report.curves import plot_learning_curves

__all__ = ["plot_learning_curves"]
