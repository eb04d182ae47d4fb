"""Transitional alias, to delete at merge: Trojan-ticket detection composes sparsity and
backdoor, so it moved to :mod:`sparta.experiments.trojan` and its plot to
:mod:`sparta.report.trojan`. Only ``sparta.commands.backdoor`` still imports this path."""

from sparta.experiments.trojan import DetectOptions, DetectResult, detect
from sparta.report.trojan import plot_detection

__all__ = ["DetectOptions", "DetectResult", "detect", "plot_detection"]
