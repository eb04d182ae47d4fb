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


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    from sparta.cli import main

    root = tmp_path_factory.mktemp("runs")
    args = ["--quiet", "train", "--dataset", "digits", "--model", "lenet300", "--width", "0.25"]
    args += ["--epochs", "1", "--train-subset", "300", "--test-subset", "50", "--seed", "2"]
    assert main([*args, "--out", str(root), "--name", "d"]) == 0
    return root / "d"


def test_from_checkpoint_rebuilds_model_data_and_config(digits_run):
    from sparta.train import TrainConfig

    model, splits, config = Run.from_checkpoint(digits_run)
    assert isinstance(config, TrainConfig) and config.seed == 2 and config.train_subset == 300
    assert model.sparta_spec["name"] == "lenet300" and not model.training
    assert len(splits.train) + len(splits.val) == 300 and len(splits.test) == 50
    # a file inside the run folder (or its checkpoints/) is the same run
    _, same, _ = Run.from_checkpoint(digits_run / "model.safetensors")
    assert same.train.indices.tolist() == splits.train.indices.tolist()
    _, full, _ = Run.from_checkpoint(digits_run, splits="full")
    assert full.val is None and len(full.train) == 1438 and len(full.test) == 359
    _, none, config = Run.from_checkpoint(digits_run, splits="none")
    assert none is None and config.train_subset == 300
    with pytest.raises(ValueError, match="splits='all'"):
        Run.from_checkpoint(digits_run, splits="all")


def test_from_checkpoint_checks_before_loading_data(digits_run, tmp_path, monkeypatch):
    from sparta import data as sdata

    def no_data(*a, **k):
        raise AssertionError("data loaded before the checks")

    monkeypatch.setattr(sdata, "load", no_data)
    readme = tmp_path / "README.md"
    readme.write_text("hi")
    with pytest.raises(ValueError, match="README.md is not a checkpoint"):
        Run.from_checkpoint(readme)
    with pytest.raises(ValueError, match="dataset mnist has"):
        Run.from_checkpoint(digits_run, dataset="mnist")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        Run.from_checkpoint(tmp_path / "nowhere")


def test_run_folder_of_and_eval_folder(digits_run, tmp_path):
    from sparta.runs import eval_folder, run_folder_of

    assert run_folder_of(digits_run) == digits_run
    assert run_folder_of(digits_run / "model.safetensors") == digits_run
    (ckpt,) = (digits_run / "checkpoints").glob("*.safetensors")
    assert run_folder_of(ckpt) == digits_run
    assert run_folder_of(tmp_path) is None
    inside = eval_folder(ckpt, "attack", {"eps": 0.1})
    assert inside == digits_run / "evals" / f"attack-{config_hash({'eps': 0.1})}"
    assert eval_folder(tmp_path, "attack", {}) is None
