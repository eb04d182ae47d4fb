"""``sparta lottery``: summary.json, table and plot; bad input is one line and exit 2."""

import json

import pytest

from sparta.cli import main

QUICK = ["--dataset", "digits", "--model", "lenet300", "--width", "0.5", "--epochs", "1"]
QUICK += ["--batch-size", "64", "--lr", "0.05"]


def test_lottery_writes_summary_table_and_plot(tmp_path, capsys):
    args = ["--quiet", "lottery", *QUICK, "--levels", "2", "--rate", "0.5", "--rewind", "2"]
    code = main([*args, "--controls", "random", "--out", str(tmp_path), "--name", "r"])
    out = capsys.readouterr().out
    assert code == 0, out
    run = tmp_path / "r"
    summary = json.loads((run / "summary.json").read_text())
    assert {"levels", "test_acc", "sparsity"} <= set(summary)
    assert [set(r) for r in summary["levels"]] == [
        {"level", "remaining", "test_acc"},
        {"level", "remaining", "test_acc", "random_acc"},
        {"level", "remaining", "test_acc", "random_acc"},
    ]
    assert summary["test_acc"] == summary["levels"][-1]["test_acc"]
    assert summary["sparsity"] == pytest.approx(1 - summary["levels"][-1]["remaining"])
    assert 0.2 < summary["levels"][-1]["remaining"] < 0.3  # 0.5 per level, output at 0.25
    table = (run / "levels.md").read_text()
    assert table.startswith("| level | remaining % | ticket | random mask |")
    assert len(table.strip().splitlines()) == 2 + 3 and table in out
    assert (run / "levels.png").stat().st_size > 5000
    config = (run / "config.yaml").read_text()
    assert "rewind_step: 2" in config and "command: lottery" in config
    assert f"run: {run}" in out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--levels", "0"], "levels=0"),
        (["--rate", "1.5"], "rate=1.5"),
        (["--rate", "0"], "rate=0.0"),
        (["--rewind", "-1"], "rewind_step=-1"),
        (["--rewind", "100000"], "rewind_step=100000 is beyond"),
        (["--controls", "reinit,shuffle"], "shuffle"),
        (["--scope", "diagonal"], "diagonal"),
        (["--structure", "nm:2:4"], "nm:2:4"),
        (["--levels", "two"], "two"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needle, tmp_path, capsys):
    code = main(["lottery", *QUICK, *args, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sparta: error:") and needle in lines[0]


def test_lottery_with_adv_trains_every_level_adversarially(tmp_path, capsys):
    args = ["--quiet", "lottery", *QUICK, "--levels", "1", "--rate", "0.5", "--controls", "none"]
    args += ["--adv", "pgd", "--eps", "0.1", "--adv-steps", "2", "--val-n", "40"]
    assert main([*args, "--out", str(tmp_path), "--name", "adv"]) == 0, capsys.readouterr().err
    run = tmp_path / "adv"
    config = (run / "config.yaml").read_text()
    assert "adv: pgd-at" in config and "adv_steps: 2" in config and "cert:" not in config
    for level in ("level_00", "level_01"):
        rows = [json.loads(x) for x in (run / f"levels/{level}/ticket/metrics.jsonl").open()]
        assert "train_robust_acc" in rows[-1] and "val_robust_acc" in rows[-1]
        summary = json.loads((run / f"levels/{level}/ticket/summary.json").read_text())
        assert 0 <= summary["val_robust_acc"] <= summary["val_acc"]
    # --resume reads the objective back from the folder's config.yaml
    before = (run / "levels/level_01/ticket/model.safetensors").stat().st_mtime_ns
    code = main(["--quiet", "lottery", "--out", str(tmp_path), "--name", "adv", "--resume"])
    assert code == 0 and "adv: pgd-at" in (run / "config.yaml").read_text()
    assert (run / "levels/level_01/ticket/model.safetensors").stat().st_mtime_ns == before


def test_lottery_with_cert_trains_every_level_with_ibp(tmp_path, capsys):
    args = ["--quiet", "lottery", *QUICK, "--levels", "1", "--rate", "0.5", "--controls", "reinit"]
    args += ["--cert", "ibp", "--cert-eps", "0.05", "--cert-val-n", "40"]
    assert main([*args, "--out", str(tmp_path), "--name", "cert"]) == 0, capsys.readouterr().err
    run = tmp_path / "cert"
    assert "cert: ibp" in (run / "config.yaml").read_text()
    for unit in ("level_00/ticket", "level_01/ticket", "level_01/reinit"):
        rows = [json.loads(x) for x in (run / f"levels/{unit}/metrics.jsonl").open()]
        assert rows[-1]["cert_eps"] == 0.05 and "val_verified_acc" in rows[-1]


def test_two_objectives_are_one_line_and_exit_2(tmp_path, capsys):
    code = main(["lottery", *QUICK, "--adv", "pgd", "--cert", "ibp", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--adv pgd-at is not allowed with --cert ibp" in err[0]
    assert not any(tmp_path.iterdir())
