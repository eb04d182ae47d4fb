"""``sparta train --pixelfly``: Pixelated Butterfly layers from the command line."""

import json
import subprocess

import pytest

from sparta import data, io
from sparta.cli import main
from sparta.models.pixelfly import PixelflyLinear
from sparta.train import evaluate
from tests.killed_run import ENV, SPARTA, kill_after_first_epoch_and_resume, same_weights

QUICK = ["--quiet", "train", "--dataset", "digits", "--model", "mlp-wide", "--width", "0.125"]
QUICK += ["--batch-size", "64", "--epochs", "2", "--lr", "0.05"]


def test_train_pixelfly_end_to_end(tmp_path):
    args = [*QUICK, "--pixelfly", "block=16,density=0.3,rank=2"]
    assert main([*args, "--out", str(tmp_path), "--name", "pf"]) == 0
    run = tmp_path / "pf"
    assert "pixelfly: block=16,density=0.3,rank=2" in (run / "config.yaml").read_text()
    summary = json.loads((run / "summary.json").read_text())
    model = io.load(run)
    fly = {n: m for n, m in model.named_modules() if isinstance(m, PixelflyLinear)}
    assert list(fly) == ["fc1", "fc2", "fc3"]
    assert all(m.rank == 2 and m.block == 16 for m in fly.values())
    test = data.load("digits", "test")
    assert evaluate(model, test)["acc"] == pytest.approx(summary["test_acc"])
    assert summary["test_acc"] > 0.25  # it learns (10 classes, chance 0.1)


@pytest.mark.parametrize(
    "value,needle",
    [("block=0", "block must be"), ("size=3", "'size=3'"), ("block=128", "block=128")],
)
def test_bad_pixelfly_input_is_one_line_exit_2_and_no_folder(value, needle, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main([*QUICK, "--pixelfly", value, "--out", str(tmp_path), "--name", "b"]))
    err = capsys.readouterr().err
    assert e.value.code == 2 and needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_killed_pixelfly_run_resumes_to_identical_weights(tmp_path):
    args = [*SPARTA, "train", "--dataset", "fashion-mnist", "--model", "mlp-wide"]
    args += ["--width", "0.125", "--epochs", "3", "--train-subset", "6000", "--test-subset"]
    args += ["500", "--pixelfly", "block=16,density=0.25", "--out", str(tmp_path)]
    subprocess.run([*args, "--name", "full"], check=True, env=ENV, capture_output=True)
    rows = kill_after_first_epoch_and_resume(args, tmp_path, "killed")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert same_weights(tmp_path / "full", tmp_path / "killed")
