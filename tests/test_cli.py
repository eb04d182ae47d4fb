import json
import subprocess

import pytest

from sparta.cli import main
from tests.killed_run import ENV, SPARTA, kill_after_first_epoch_and_resume, same_weights

QUICK = ["--dataset", "digits", "--model", "lenet300", "--batch-size", "64", "--lr", "0.05"]


def _run(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    "args,needle",
    [
        (["train", "--dataset", "imagenet-42"], "imagenet-42"),
        (["train", "--model", "resnet9000", *QUICK[:2]], "resnet9000"),
        (["train", "--epochs", "-3"], "epochs=-3"),
        (["train", "--config", "/no/such/config.yaml"], "/no/such/config.yaml"),
        (["eval", "--ckpt", "/no/such/run"], "/no/such/run"),
        (["train", "--optimizer", "rmsprop"], "rmsprop"),
        (["train", "--epochs", "two"], "two"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_bad_input_prints_one_line_and_exits_2(args, needle, capsys, tmp_path):
    code, out, err = _run(
        [*args, *(["--out", str(tmp_path)] if args[0] == "train" else [])], capsys
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sparta: error:") and needle in lines[0]
    assert "Traceback" not in err


def test_unreadable_config_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: [\n")
    code, _, err = _run(["train", "--config", str(cfg), "--out", str(tmp_path)], capsys)
    assert code == 2 and "not valid YAML" in err and len(err.strip().splitlines()) == 1


def test_train_then_eval_round_trip_and_flags_beat_config(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 5\nlr: 0.05\nbatch_size: 64\nmodel: lenet300\ndataset: digits\n")
    code, out, _ = _run(
        [
            "--quiet",
            "train",
            "--config",
            str(cfg),
            "--epochs",
            "2",
            "--out",
            str(tmp_path),
            "--name",
            "r",
        ],
        capsys,
    )
    assert code == 0, out
    run = tmp_path / "r"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 2 and 0.5 < summary["test_acc"] <= 1
    assert (run / "curves.png").stat().st_size > 1000
    assert "lr: 0.05" in (run / "config.yaml").read_text()
    assert f"run: {run}" in out and "plot:" in out
    code, out, _ = _run(["eval", "--ckpt", str(run), "--out", str(tmp_path)], capsys)
    assert code == 0
    assert f"test_acc={summary['test_acc']:.4f}" in out


def test_models_and_datasets_list(capsys):
    code, out, _ = _run(["models", "lenet*"], capsys)
    assert code == 0 and "lenet300" in out and "params=    266,610" in out
    code, out, _ = _run(["datasets"], capsys)
    assert code == 0 and "digits" in out and "synthetic" in out


def test_killed_run_resumes_to_identical_weights(tmp_path):
    """Kill a real training process after its first epoch; --resume ends where an
    uninterrupted run ends, bit for bit."""
    args = [
        *SPARTA,
        "train",
        "--dataset",
        "fashion-mnist",
        "--model",
        "lenet300",
        "--width",
        "0.5",
        "--epochs",
        "3",
        "--train-subset",
        "20000",
        "--test-subset",
        "500",
        "--batch-size",
        "128",
        "--optimizer",
        "sgd",
        "--out",
        str(tmp_path),
    ]
    subprocess.run([*args, "--name", "full"], check=True, env=ENV, capture_output=True)
    rows = kill_after_first_epoch_and_resume(args, tmp_path, "killed")
    assert same_weights(tmp_path / "full", tmp_path / "killed")
    epochs = [r["epoch"] for r in rows]
    assert epochs == [1, 2, 3]


def test_demo_falls_back_to_digits_when_fashion_is_missing(tmp_path, capsys, monkeypatch):
    from sparta import data as sdata

    real = sdata.available

    def without_fashion():
        rows = real()
        for r in rows:
            if r["name"] == "fashion-mnist":
                r.update(found=False, path=None)
        return rows

    monkeypatch.setattr(sdata, "available", without_fashion)
    code, out, err = _run(["demo", "--epochs", "1", "--out", str(tmp_path)], capsys)
    assert code == 0
    assert (tmp_path / "demo-digits" / "summary.json").is_file()
    assert "digits" in out
