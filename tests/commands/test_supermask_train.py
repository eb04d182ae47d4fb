"""``sparta train --supermask``: edge-popup from the command line."""

import json

import pytest
import torch

from sparta import io
from sparta.cli import main
from sparta.sparsity.masks import masks_of
from sparta.train import evaluate
from tests.killed_run import SPARTA, kill_after_first_epoch_and_resume, same_weights

QUICK = ["--quiet", "train", "--dataset", "digits", "--model", "lenet5", "--batch-size", "64"]
QUICK += ["--epochs", "2", "--weight-decay", "1e-4"]


def test_train_supermask_end_to_end(tmp_path, capsys):
    args = [*QUICK, "--supermask", "0.6", "--supermask-weights", "signed-constant"]
    assert main([*args, "--out", str(tmp_path), "--name", "sm"]) == 0
    run = tmp_path / "sm"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["sparsity"] == pytest.approx(0.6, abs=1e-3)
    config = (run / "config.yaml").read_text()
    assert "supermask: 0.6" in config and "supermask_weights: signed-constant" in config
    # the run's model loads as the masked subnetwork of the frozen signed-constant weights
    model = io.load(run)
    masks = masks_of(model)
    assert len(masks) == 5
    for n, p in model.named_parameters():
        if n in masks:
            kept = p.detach()[masks[n]].abs()
            assert torch.allclose(kept, torch.full_like(kept, float(kept[0])))  # one constant
            assert not p[~masks[n]].any()
        else:
            assert not p.any()  # biases zero: no weight trained
    from sparta import data

    test = data.load("digits", "test")
    assert evaluate(model, test)["acc"] == pytest.approx(summary["test_acc"])


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--supermask", "1.5"], "supermask=1.5"),
        (["--supermask-weights", "signed-constant"], "supermask_weights='signed-constant'"),
        (["--supermask", "0.5", "--supermask-weights", "ones"], "ones"),
        (["--supermask", "0.5", "--sparsity", "0.5", "--gmp"], "--supermask 0.5"),
        (["--supermask", "0.5", "--sparsity", "0.5", "--dst", "rigl"], "--supermask 0.5"),
    ],
)
def test_bad_supermask_input_is_one_line_exit_2_and_no_folder(extra, needle, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main([*QUICK, *extra, "--out", str(tmp_path), "--name", "bad"]))
    err = capsys.readouterr().err
    assert e.value.code == 2 and needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def test_killed_supermask_run_resumes_to_identical_scores(tmp_path):
    args = [*SPARTA, "train", "--dataset", "fashion-mnist", "--model", "lenet300"]
    args += ["--width", "0.5", "--epochs", "3", "--train-subset", "12000", "--test-subset"]
    args += ["500", "--supermask", "0.5", "--out", str(tmp_path)]
    import subprocess

    from tests.killed_run import ENV

    subprocess.run([*args, "--name", "full"], check=True, env=ENV, capture_output=True)
    rows = kill_after_first_epoch_and_resume(args, tmp_path, "killed")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert same_weights(tmp_path / "full", tmp_path / "killed")  # weights and scores
