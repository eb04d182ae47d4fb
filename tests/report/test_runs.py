"""plot_run re-draws any run folder from what it recorded, by its recorded command."""

import json

import pytest
import torch

from sparta.backdoor.recover import RecoveryResult
from sparta.certify.smoothing import SmoothingReport
from sparta.report import PLOTTERS, plot_run
from sparta.report.attacks import plot_robust_curve
from sparta.report.certify import status_fractions
from sparta.report.lottery import levels_table
from sparta.report.triggers import ROWS, trigger_figure
from sparta.report.unlearn import format_markdown
from sparta.runs import Run

LEVELS = [
    {"level": 0, "remaining": 1.0, "test_acc": 0.90},
    {"level": 1, "remaining": 0.8, "test_acc": 0.91, "reinit_acc": 0.85, "random_acc": 0.84},
    {"level": 2, "remaining": 0.64, "test_acc": 0.89, "reinit_acc": 0.80, "random_acc": 0.79},
]


def _run(tmp_path, command, summary=None, name=None, **config):
    run = Run.create(config, command, root=tmp_path, name=name or command)
    if summary is not None:
        run.write_summary(summary)
    return run


def _png(path):
    assert path.suffix == ".png" and path.read_bytes()[:4] == b"\x89PNG"
    return path.stat().st_size


def test_lottery_run_gives_the_table_and_the_plot(tmp_path):
    run = _run(tmp_path, "lottery", {"levels": LEVELS}, model="lenet300", dataset="mnist")
    md, png = plot_run(run.path)
    assert (md, png) == (run.file("levels.md"), run.file("levels.png"))
    assert md.read_text() == levels_table(LEVELS)
    assert "| 1 | 80.00 | 0.9100 | 0.8500 | 0.8400 |" in md.read_text()
    assert "| 0 | 100.00 | 0.9000 | - | - |" in md.read_text()
    assert _png(png) > 5000


def test_attack_run_from_its_summary_and_curve(tmp_path):
    main = {"clean_acc": 0.9, "robust_acc": 0.5, "n": 10, "eps": 0.1, "norm": "linf",
            "suite": "custom", "attacks": ["pgd", "fgsm"], "robust_acc_pgd": 0.6,
            "robust_acc_fgsm": 0.5}  # fmt: skip
    curve = [{"eps": 0.05, "robust_acc": 0.7}, {"eps": 0.1, "robust_acc": 0.5}]
    run = _run(tmp_path, "attack", {**main, "curve": curve})
    assert [p.name for p in plot_run(run.path)] == ["robust_acc_vs_eps.png"]
    assert _png(run.file("robust_acc_vs_eps.png")) > 5000
    with pytest.raises(ValueError, match="no report has 'clean_acc'"):
        plot_robust_curve([{"eps": 0.1, "robust_acc": 0.5}], tmp_path / "x.png")
    with pytest.raises(ValueError, match="no reports"):
        plot_robust_curve([], tmp_path / "x.png")


def test_certify_smooth_run_from_its_examples(tmp_path):
    report = SmoothingReport(0.25, 10, 100, 0.01, torch.tensor([1, 2, -1]),
                             torch.tensor([0.3, 0.0, 0.0], dtype=torch.float64),
                             torch.tensor([1, 1, 0]))  # fmt: skip
    back = SmoothingReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert back.summary() == report.summary()
    run = _run(tmp_path, "certify", {"smooth_acc": 1 / 3}, method="smooth")
    with pytest.raises(FileNotFoundError, match="smoothing_examples.json"):
        plot_run(run.path)
    run.file("smoothing_examples.json").write_text(json.dumps(report.to_dict()))
    assert plot_run(run.path) == [run.file("certified_acc_vs_radius.png")]
    assert _png(run.file("certified_acc_vs_radius.png")) > 5000


@pytest.mark.parametrize("method", ["crown", "ibp", "alpha-crown", "bab"])
def test_certify_bound_run_plots_its_verified_split(tmp_path, method):
    counts = {"verified": 5, "unknown": 2, "falsified": 1, "wrong": 2}
    summary = {"n": 10, **counts, "verified_acc": 0.5, "method": method, "eps": 0.1,
               "norm": "linf"}  # fmt: skip
    run = _run(tmp_path, "certify", summary, name=method, method=method, ckpt="runs/lenet5")
    assert status_fractions(summary) == {k: v / 10 for k, v in counts.items()}
    assert plot_run(run.path) == [run.file("verified_acc.png")]
    assert _png(run.file("verified_acc.png")) > 3000
    broken = _run(tmp_path, "certify", {"verified_acc": 0.5}, name="old", method=method)
    with pytest.raises(ValueError, match="no n, verified, unknown, falsified, wrong"):
        plot_run(broken.path)


def test_unlearn_bench_run_gives_md_csv_png(tmp_path):
    rows = [
        {"method": m, "sparsity": s, "ua": 0.1, "ra": 0.9, "ta": 0.85, "mia_efficacy": 0.2,
         "avg_gap": 0.0 if m == "retrain" else 0.05, "rte_s": 2.0, "rte_ratio": 1.0}
        for s in (0.0, 0.9) for m in ("retrain", "ft")
    ]  # fmt: skip
    run = _run(tmp_path, "unlearn-bench", {"rows": rows})
    md, csv, png = plot_run(run.path)
    assert md.read_text() == format_markdown(rows) + "\n"
    assert "| ft | 90% | 10.00 | 90.00 | 85.00 | 20.00 | 5.00 | 2.00 | 1.000 |" in md.read_text()
    assert csv.read_text().splitlines()[0].startswith("method,sparsity,ua,ra")
    assert _png(png) > 5000


def test_recover_run_from_its_saved_triggers(tmp_path):
    k = 3
    res = RecoveryResult([0, 1, 2], [5.0, 1.0, 6.0], [0.0, 2.5, -0.3], [1.0, 1.0, 0.9],
                         torch.rand(k, 4, 4), torch.rand(k, 1, 4, 4), 2.0, [1])  # fmt: skip
    run = _run(tmp_path, "backdoor-recover", res.to_dict())
    res.save(run.file("triggers.safetensors"))
    back = RecoveryResult.load(run.file("triggers.safetensors"))
    assert back.to_dict() == res.to_dict() and back.target == 1
    assert torch.equal(back.masks, res.masks) and torch.equal(back.patterns, res.patterns)
    assert plot_run(run.path) == [run.file("trigger.png")]
    assert _png(run.file("trigger.png")) > 1000
    fig = trigger_figure(back)
    axes = fig.axes  # row-major: masks, then triggers
    assert [axes[0].get_ylabel(), axes[k].get_ylabel()] == list(ROWS)
    assert [a.get_title() for a in axes[:k]] == ["0\nL1 5.0", "1 *\nL1 1.0", "2\nL1 6.0"]


def test_train_curves_unknown_command_and_bad_folders(tmp_path):
    run = _run(tmp_path, "train", {"test_acc": 0.5})
    assert plot_run(run.path) == []  # no epoch metrics: nothing to draw
    run.log({"epoch": 1, "train_loss": 1.0, "train_acc": 0.5})
    run.log({"epoch": 2, "train_loss": 0.5, "train_acc": 0.7})
    assert plot_run(run.path) == [run.file("curves.png")]
    assert plot_run(_run(tmp_path, "eval", {"test_acc": 0.5}).path) == []
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        plot_run(tmp_path / "missing")
    assert set(PLOTTERS) >= {"train", "lottery", "attack", "certify", "unlearn-bench"}
