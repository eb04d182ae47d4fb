"""``sparta anytime``: the run and its plot, a killed run resumed, bad input."""

import json
import signal
import subprocess
import time

import pytest

from sparta.cli import main
from sparta.sparsity.anytime import AnytimeConfig, run_anytime
from sparta.train import TrainConfig
from tests.killed_run import ENV, SPARTA, same_weights

FLAGS = ["--dataset", "digits", "--model", "lenet300", "--batch-size", "64", "--lr", "0.05"]
FLAGS += ["--train-subset", "600", "--megabatches", "3", "--sparsity", "0.8"]


def test_anytime_end_to_end(tmp_path, capsys):
    args = ["--quiet", "anytime", *FLAGS, "--epochs", "1", "--out", str(tmp_path), "--name", "a"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "APP: test_acc=" in out and "oneshot" in out and "dense" in out
    run = tmp_path / "a"
    assert (run / "anytime.png").stat().st_size > 0
    table = (run / "anytime.md").read_text()
    assert "| 3 |" in table and "(80.0%)" in table
    summary = json.loads((run / "summary.json").read_text())
    assert summary["sparsity"] == pytest.approx(0.8, abs=1e-4)
    for branch in ("app", "oneshot", "dense"):
        assert (run / branch / "mb_03" / "model.safetensors").is_file()


def test_killed_anytime_run_resumes_and_matches_an_uninterrupted_one(tmp_path):
    """A real process is killed inside mega-batch 2; the resumed run skips mega-batch 1 and
    ends bit-identical to an uninterrupted run of the same options."""
    cfg = TrainConfig(
        dataset="digits", model="lenet300", batch_size=64, lr=0.05, train_subset=600, epochs=3
    )
    run_anytime(cfg, AnytimeConfig(megabatches=3, sparsity=0.8, baselines="none"),
                root=tmp_path, name="full")  # fmt: skip
    args = [*SPARTA, "anytime", *FLAGS, "--epochs", "3", "--baselines", "none"]
    args += ["--out", str(tmp_path), "--name", "k"]
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    unit = tmp_path / "k" / "app" / "mb_02"
    deadline = time.time() + 120
    while not (unit / "checkpoints" / "epoch_0001.json").exists() and time.time() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (unit / "summary.json").exists(), "the run was not interrupted in mega-batch 2"
    first = tmp_path / "k" / "app" / "mb_01" / "model.safetensors"
    stamp = first.stat().st_mtime_ns
    subprocess.run([*args, "--resume"], check=True, env=ENV, capture_output=True)
    assert first.stat().st_mtime_ns == stamp, "a finished mega-batch was trained again"
    epochs = [json.loads(x)["epoch"] for x in (unit / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    for i in (1, 2, 3):
        a, b = (tmp_path / r / "app" / f"mb_0{i}" for r in ("full", "k"))
        assert same_weights(a, b), f"mega-batch {i} differs"
    full = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert json.loads((tmp_path / "k" / "summary.json").read_text())["curves"] == full["curves"]


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["--megabatches", "0"], "megabatches=0"),
        (["--sparsity", "1"], "sparsity=1.0"),
        (["--baselines", "random"], "baselines='random'"),
        (["--method", "nope"], "nope"),
        (["--megabatches", "5000"], "megabatches=5000"),
        (["--model", "nope"], "nope"),
    ],
)
def test_bad_input_prints_one_line_and_exits_2(flags, needle, tmp_path, capsys):
    args = ["--quiet", "anytime", *FLAGS, *flags, "--out", str(tmp_path), "--name", "bad"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "bad").exists()
