import pytest

from sparta.report import plot_learning_curves
from sparta.report.curves import curve_series
from sparta.runs import Run


def test_plot_writes_a_png_from_metrics(tmp_path):
    run = Run.create({}, "train", root=tmp_path, name="r")
    for e in (1, 2, 3):
        run.log(
            {
                "epoch": e,
                "train_loss": 1 / e,
                "train_acc": e / 4,
                "val_loss": 1.1 / e,
                "val_acc": e / 5,
            }
        )
    run.write_summary({"test_acc": 0.5})
    path = plot_learning_curves(run.path)
    assert path == run.path / "curves.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_adversarial_training_curves_include_validation_robust_accuracy(tmp_path):
    run = Run.create({}, "train", root=tmp_path, name="adv")
    for e in (1, 2, 3):
        row = {"epoch": e, "train_loss": 1 / e, "train_robust_acc": e / 6, "val_acc": e / 5}
        run.log({**row, **({"val_robust_acc": e / 7} if e != 2 else {})})  # 2: not validated
    series = curve_series(run.metrics())
    assert series["acc"]["val robust"] == ([1, 3], [1 / 7, 3 / 7])
    assert series["acc"]["train robust"] == ([1, 2, 3], [1 / 6, 2 / 6, 3 / 6])
    assert set(series["acc"]) == {"val", "train robust", "val robust"}
    assert set(series["loss"]) == {"train"}
    assert plot_learning_curves(run.path).read_bytes()[:4] == b"\x89PNG"


def test_plot_without_metrics_is_a_clear_error(tmp_path):
    run = Run.create({}, "train", root=tmp_path, name="r")
    with pytest.raises(ValueError, match="no epoch metrics"):
        plot_learning_curves(run.path)


def test_a_run_that_shrank_also_plots_its_channels_and_step_time(tmp_path):
    from sparta.report.curves import plot_curves_run

    run = Run.create({}, "train", root=tmp_path, name="chase")
    for e, (channels, t) in enumerate([(100, 0.02), (70, 0.015), (60, 0.012)], start=1):
        row = {"epoch": e, "train_loss": 1 / e, "train_acc": e / 4}
        run.log({**row, "channels": channels, "step_time_s": t})
    paths = plot_curves_run(run)
    assert paths == [run.path / "curves.png", run.path / "shrink.png"]
    assert paths[1].read_bytes()[:4] == b"\x89PNG"
    plain = Run.create({}, "train", root=tmp_path, name="plain")
    plain.log({"epoch": 1, "train_loss": 1.0, "train_acc": 0.5})
    assert plot_curves_run(plain) == [plain.path / "curves.png"]
