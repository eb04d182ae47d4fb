"""``sparta train --dst chase``: the run shrinks, resumes after a kill, rejects bad input."""

import json

import pytest
import torch

from sparta import io
from sparta.cli import main
from sparta.sparsity.masks import masks_of
from tests.killed_run import SPARTA, kill_after_first_epoch_and_resume, same_weights

QUICK = ["train", "--dataset", "digits", "--model", "lenet300", "--width", "0.25"]
QUICK += ["--batch-size", "32", "--epochs", "3", "--update-interval", "5"]
CHASE = ["--dst", "chase", "--sparsity", "0.9", "--chase-channel-sparsity", "0.4"]


def test_chase_run_ends_small_at_the_budget_and_loads(tmp_path):
    assert main(["--quiet", *QUICK, *CHASE, "--out", str(tmp_path), "--name", "c"]) == 0
    run = tmp_path / "c"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    hidden = 75 + 25  # lenet300 at width 0.25: two hidden layers
    assert [r["channels"] for r in rows][-1] == hidden - round(0.4 * hidden)
    assert rows[0]["channels"] < hidden  # channels already went in epoch 1 (steps 12-61)
    assert all(r["step_time_s"] > 0 and r["epoch_time_s"] > 0 for r in rows)
    model = io.load(run)
    assert model.fc1.out_features + model.fc2.out_features == hidden - round(0.4 * hidden)
    budget = rows[0]["active_weights"]
    assert sum(int(m.sum()) for m in masks_of(model).values()) == budget
    assert "chase_channel_sparsity: 0.4" in (run / "config.yaml").read_text()


def test_killed_chase_run_resumes_the_shrunk_model_bit_exactly(tmp_path):
    args = [*SPARTA, *QUICK, *CHASE, "--out", str(tmp_path)]
    import subprocess

    from tests.killed_run import ENV

    subprocess.run([*args, "--name", "full"], check=True, env=ENV, capture_output=True)
    rows = kill_after_first_epoch_and_resume(args, tmp_path, "killed")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert same_weights(tmp_path / "full", tmp_path / "killed")
    x = torch.rand(4, 1, 8, 8)
    a, b = io.load(tmp_path / "full").eval(), io.load(tmp_path / "killed").eval()
    assert torch.equal(a(x), b(x))


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["--dst", "rigl", "--sparsity", "0.9", "--chase-channel-sparsity", "0.5"], "--dst"),
        ([*CHASE[:4], "--chase-channel-sparsity", "1.5"], "chase_channel_sparsity=1.5"),
        ([*CHASE, "--chase-start", "0.6", "--chase-end", "0.5"], "chase_start, chase_end"),
        ([*CHASE, "--chase-end", "0.9"], "chase_start, chase_end"),  # after the updates stop
        ([*CHASE, "--update-interval", "500"], "no topology update"),
        ([*CHASE, "--sup-tickets", "2"], "sup_tickets=2"),
    ],
)
def test_bad_chase_options_print_one_line_and_exit_2(flags, needle, tmp_path, capsys):
    base = QUICK[:-2]  # the default update interval (100)
    assert main(["--quiet", *base, *flags, "--out", str(tmp_path), "--name", "bad"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "bad").exists()
