"""``sparta train --dst rigl --sup-tickets N``: the run, its resume and its bad input."""

import json

import pytest
from safetensors.torch import load_file

from sparta import io
from sparta.cli import main
from sparta.commands import sparse_train
from sparta.sparsity.masks import masks_of
from sparta.train import Callback

QUICK = ["--quiet", "train", "--dataset", "digits", "--model", "lenet300", "--batch-size", "64"]
QUICK += ["--lr", "0.05", "--epochs", "4", "--update-interval", "5"]


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_sup_tickets_run_is_exactly_at_the_budget(tmp_path):
    args = [*QUICK, "--dst", "rigl", "--sparsity", "0.9", "--sup-tickets", "3"]
    args += ["--sup-fraction", "0.5"]
    assert main([*args, "--out", str(tmp_path), "--name", "s"]) == 0
    run = tmp_path / "s"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["sup_tickets"] == 4  # the pre-cycle model and one ticket per cycle
    assert summary["sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert 0 <= summary["last_ticket_val_acc"] <= 1
    model = io.load(run / "model.safetensors")
    params = dict(model.named_parameters())
    masks = masks_of(model)
    assert sum(int(m.sum()) for m in masks.values()) == sum(
        int(p.count_nonzero()) for n, p in params.items() if n in masks
    )
    assert "sup_tickets: 3" in (run / "config.yaml").read_text()


class _StopAfterTwoEpochs(Callback):
    name = "stopper"

    def on_epoch_end(self, t, metrics):
        t.should_stop = t.epoch >= 2


def test_resumed_sup_tickets_run_matches_an_uninterrupted_one_bit_exactly(tmp_path, monkeypatch):
    # 4 epochs of 21 steps, 3 cycles of 14 steps from step 42: the cut at epoch 2 (step 42)
    # holds one ticket, so the running average must travel in the checkpoint
    args = [*QUICK, "--dst", "rigl", "--sparsity", "0.9", "--sup-tickets", "3"]
    args += ["--sup-fraction", "0.5"]
    args += ["--out", str(tmp_path)]
    assert main([*args, "--name", "full"]) == 0
    original = sparse_train.sparse_callbacks
    monkeypatch.setattr(
        sparse_train, "sparse_callbacks", lambda *a: [*original(*a), _StopAfterTwoEpochs()]
    )
    assert main([*args, "--name", "cut"]) == 0
    assert [m["sup_tickets"] for m in _metrics(tmp_path / "cut")] == [0, 1]
    monkeypatch.setattr(sparse_train, "sparse_callbacks", original)
    assert main([*args, "--name", "cut", "--resume"]) == 0
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["--sup-tickets", "2"], "sup_tickets=2"),  # needs --dst
        (["--dst", "set", "--sparsity", "0.9", "--sup-tickets", "-1"], "sup_tickets=-1"),
        (
            ["--dst", "set", "--sparsity", "0.9", "--sup-tickets", "2", "--sup-fraction", "0"],
            "sup_fraction=0.0",
        ),
        (
            ["--dst", "set", "--sparsity", "0.9", "--sup-tickets", "2", "--sup-low", "0.9"],
            "sup_low=0.9",
        ),
        (
            ["--dst", "set", "--sparsity", "0.9", "--sup-tickets", "2", "--sup-explore", "1"],
            "sup_explore=1.0",
        ),
        (
            ["--dst", "set", "--sparsity", "0.9", "--sup-low", "0.001"],
            "sup_low=0.001",
        ),  # ignored without cycles
        (["--dst", "set", "--sparsity", "0.9", "--sup-tickets", "300"], "do not fit"),
    ],
)
def test_bad_sup_tickets_options_print_one_line_and_exit_2(flags, needle, tmp_path, capsys):
    assert main([*QUICK, *flags, "--out", str(tmp_path), "--name", "bad"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "bad").exists()
