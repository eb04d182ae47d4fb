"""The anytime table and plot of APP runs."""

import pytest

from sparta.report.anytime import anytime_table, plot_anytime, plot_anytime_run
from sparta.runs import Run

CURVES = {
    "app": [
        {"megabatch": 1, "n_train": 10, "sparsity": 0.2, "test_acc": 0.5},
        {"megabatch": 2, "n_train": 20, "sparsity": 0.9, "test_acc": 0.7},
    ],
    "dense": [
        {"megabatch": 1, "n_train": 10, "sparsity": 0.0, "test_acc": 0.6},
        {"megabatch": 2, "n_train": 20, "sparsity": 0.0, "test_acc": 0.8},
    ],
}


def test_table_lists_each_megabatch_and_the_mean():
    lines = anytime_table(CURVES).splitlines()
    assert lines[0] == "| mega-batch | n train | app acc (sparsity) | dense acc (sparsity) |"
    assert lines[2] == "| 1 | 10 | 0.5000 (20.0%) | 0.6000 (0.0%) |"
    assert lines[3] == "| 2 | 20 | 0.7000 (90.0%) | 0.8000 (0.0%) |"
    assert lines[4] == "| mean | | 0.6000 | 0.7000 |"


def test_plot_and_run_files(tmp_path):
    assert plot_anytime(CURVES, tmp_path / "a.png").stat().st_size > 0
    run = Run.create({"model": "m", "dataset": "d", "megabatches": 2}, "anytime", root=tmp_path)
    with pytest.raises(ValueError, match="no curves"):
        plot_anytime_run(run)
    run.write_summary({"curves": CURVES})
    md, png = plot_anytime_run(run)
    assert md.read_text() == anytime_table(CURVES) and png.stat().st_size > 0
