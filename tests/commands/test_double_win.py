"""``sparta double-win``: run folder, resume of finished units, bad input in one line."""

from __future__ import annotations

import json

import pytest

from sparta.cli import main

QUICK = ["--dataset", "digits:classes=0-4", "--target", "digits:classes=5-9", "--width", "0.5"]
QUICK += ["--epochs", "1", "--batch-size", "64", "--steps", "4", "--adv-steps", "1"]
QUICK += ["--eval-steps", "2", "--fractions", "0.1,1", "--finetunes", "st,at"]


def test_double_win_writes_rows_and_resumes_only_what_is_missing(tmp_path, capsys):
    args = ["--quiet", "double-win", *QUICK, "--out", str(tmp_path), "--name", "dw"]
    assert main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    run = tmp_path / "dw"
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["rows"]) == 2 * 2 * 2 and len(summary["aggregate"]) == 8
    assert {(r["source"], r["fraction"], r["finetune"]) for r in summary["rows"]} == {
        (s, f, t) for s in ("standard", "robust") for f in (0.1, 1.0) for t in ("st", "at")
    }
    assert all(r["sparsity"] == pytest.approx(0.8, abs=1e-3) for r in summary["rows"])
    assert (run / "double_win.md").read_text() in out
    assert "source: robust" not in (run / "config.yaml").read_text()
    assert "target: digits:classes=5-9" in (run / "config.yaml").read_text()
    # a killed run: one transfer and the summary missing; --resume redoes only that one
    units = sorted((run / "transfers").glob("*.json"))
    lost = run / "transfers" / "robust-0.1-at-0.json"
    assert lost in units
    before = {p: p.stat().st_mtime_ns for p in units if p != lost}
    sources = {p: p.stat().st_mtime_ns for p in (run / "sources").glob("*")}
    lost.unlink()
    (run / "summary.json").unlink()
    assert main(["--quiet", "double-win", "--out", str(tmp_path), "--name", "dw", "--resume"]) == 0
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    assert all(p.stat().st_mtime_ns == t for p, t in sources.items())
    again = json.loads((run / "summary.json").read_text())
    assert again["rows"] == summary["rows"]  # the redone transfer is bit-for-bit the same


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--fractions", "0,1"], "fractions='0,1'"),
        (["--finetunes", "st,xx"], "finetunes='st,xx'"),
        (["--sparsity", "1"], "sparsity=1.0"),
        (["--target", "digits:classes=5-7"], "has 3 classes"),
        (["--target", "digits:classes=5-12"], "class 10 does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needle, tmp_path, capsys):
    code = main(["double-win", *QUICK, *args, "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert not any(tmp_path.iterdir())
