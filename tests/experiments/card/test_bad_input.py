"""Bad input: one line, exit 2, nothing created, nothing already computed lost."""

from __future__ import annotations

import pytest

import sparta
from sparta import models
from sparta.cli import main
from sparta.data import DatasetInfo
from sparta.experiments.card import engine

from .conftest import TINY, cli_args


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--variants", "dense", "nosuch"], "variant 'nosuch' is not known"),
        (["--pillars", "accuracy,karma"], "pillar 'karma' is not known"),
        (["--metrics", "test_acc", "speed"], "metric 'speed' is not known"),
        (["--pillars", "accuracy", "--metrics", "robust_acc"], "metric 'robust_acc'"),
        (["--sparsities", "0.5", "1.0"], "sparsities=1.0 is not allowed"),
        (["--sparsities", "-0.1"], "sparsities=-0.1 is not allowed"),
        (["--dataset", "nosuch"], "dataset 'nosuch' is not known"),
        (["--model", "nosuch"], "model 'nosuch' is not known"),
        (["--ckpt", "missing/run"], "not found: missing/run"),
        (["--executor", "slurm"], "invalid choice: 'slurm'"),
        (["--robust-n", "0"], "robust_n=0 is not allowed"),
    ],
)
def test_cli_rejects_in_one_line_and_creates_nothing(tmp_path, capsys, extra, message):
    rc = main(["card", *cli_args(TINY), *extra, "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("sparta: error: ") and message in err
    assert not (tmp_path / "runs").exists()


def test_checkpoint_whose_dataset_is_missing(tmp_path, capsys, monkeypatch):
    info = DatasetInfo("fashion-mnist", (1, 8, 8), 10, (0.5,), (0.5,), tuple("0123456789"))
    sparta.save(models.create("lenet5", dataset=info), tmp_path / "m.safetensors")
    rows = [{"name": "fashion-mnist", "found": False, "searched": ["/nowhere"]}]
    monkeypatch.setattr("sparta.data.available", lambda: rows)
    rc = main(["card", "--ckpt", str(tmp_path / "m.safetensors"), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "dataset 'fashion-mnist' is missing" in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_bad_input_on_resume_loses_nothing(tmp_path, capsys):
    base = ["card", *cli_args({**TINY, "pillars": ["accuracy"], "variants": ["dense"]})]
    base += ["--out", str(tmp_path), "--name", "c"]
    assert main(base) == 0
    done = tmp_path / "c" / "cells" / "dense-0.00"
    before = {p.name: p.read_bytes() for p in done.iterdir()}
    capsys.readouterr()
    assert main([*base, "--resume", "--variants", "dense", "gmpp"]) == 2
    assert main([*base, "--resume", "--epochs", "3"]) == 2
    assert "--epochs 3 (recorded: 2) differ" in capsys.readouterr().err
    assert main([*base, "--resume", "--epochs", "3", "--override", "epochs"]) == 2
    assert "--override epochs is not allowed with sparta card" in capsys.readouterr().err
    assert main([*base, "--resume", "--lr", "0.2"]) == 2
    assert "--lr 0.2 (recorded: 0.1) differ" in capsys.readouterr().err
    # options that change no number may differ: the finished cell is reused
    assert main([*base, "--resume", "--metrics", "test_acc", "--quiet"]) == 0
    assert "cells computed: 0, reused: 2" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in done.iterdir()} == before


def test_cli_prints_the_table_and_the_page(tmp_path, capsys):
    opts = {**TINY, "pillars": ["accuracy"], "variants": ["dense"]}
    assert main(["--quiet", "card", *cli_args(opts), "--out", str(tmp_path), "--name", "c"]) == 0
    out = capsys.readouterr().out
    assert "test acc" in out and "dense" in out
    assert f"card: {tmp_path / 'c'}" in out


def test_names_resolve_to_canonical_and_dense_comes_first():
    opts = engine.resolve_options(**TINY, variants=["GMP,oneshot"], pillars=["Accuracy"])
    assert opts.variants == ["dense", "gmp", "oneshot"] and opts.pillars == ["accuracy"]
    assert engine.resolve_options(**{**TINY, "model": "LeNet5"}).model == "lenet5"
