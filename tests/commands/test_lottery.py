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
