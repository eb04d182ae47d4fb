import pytest

from sparta.runs import Run, config_hash


def test_create_writes_config_and_names_by_hash(tmp_path):
    run = Run.create({"lr": 0.1, "model": "m"}, "train", root=tmp_path)
    assert run.path.name == f"train-{config_hash({'lr': 0.1, 'model': 'm'})}"
    assert run.read_config() == {"command": "train", "lr": 0.1, "model": "m"}
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_existing_folder_needs_resume_or_overwrite(tmp_path):
    run = Run.create({"a": 1}, "train", root=tmp_path, name="r")
    run.log({"epoch": 1})
    with pytest.raises(ValueError, match="--resume"):
        Run.create({"a": 1}, "train", root=tmp_path, name="r")
    again = Run.create({"a": 1}, "train", root=tmp_path, name="r", resume=True)
    assert again.metrics() == [{"epoch": 1}]
    fresh = Run.create({"a": 1}, "train", root=tmp_path, name="r", overwrite=True)
    assert fresh.metrics() == []


def test_metrics_skip_a_torn_line_and_truncate(tmp_path):
    run = Run.create({}, "x", root=tmp_path)
    for e in (1, 2, 3):
        run.log({"epoch": e, "acc": e / 10})
    with run.metrics_file.open("a") as f:
        f.write('{"epoch": 4, "ac')  # a kill in the middle of a write
    assert [r["epoch"] for r in run.metrics()] == [1, 2, 3]
    run.truncate_metrics(lambda r: r["epoch"] <= 2)
    assert [r["epoch"] for r in run.metrics()] == [1, 2]


def test_summary_round_trip(tmp_path):
    import torch

    run = Run.create({}, "x", root=tmp_path)
    run.write_summary({"test_acc": torch.tensor(0.5), "levels": [(1, 2)]})
    assert run.read_summary() == {"test_acc": 0.5, "levels": [[1, 2]]}
