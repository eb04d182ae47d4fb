"""`sparta unlearn` and `unlearn-bench`: summary keys, sets, table; the checkpoint is read only."""

import hashlib
import json

import pytest

from sparta.cli import main

TRAIN = ["--dataset", "digits", "--model", "lenet300", "--width", "0.25", "--epochs", "2"]
TRAIN += ["--batch-size", "64", "--lr", "0.05", "--train-subset", "600", "--test-subset", "300"]
FAST = ["--epochs", "1", "--retrain-epochs", "1", "--batch-size", "64", "--mia-max", "200"]


def _digest(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("unlearn")
    assert main(["--quiet", "train", *TRAIN, "--out", str(root), "--name", "base"]) == 0
    return root / "base"


def _unlearn(ckpt, out, name, *extra):
    return main(["--quiet", "unlearn", "--ckpt", str(ckpt), *FAST, "--out", str(out),
                 "--name", name, *extra])  # fmt: skip


def test_unlearn_writes_summary_and_sets_and_leaves_checkpoint(ckpt, tmp_path, capsys):
    before = _digest(ckpt)
    code = _unlearn(ckpt, tmp_path, "u", "--method", "salun", "--forget", "class:3",
                    "--prune", "0.5", "--compute-retrain")  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    run = tmp_path / "u"
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary) == {"ua", "ra", "ta", "mia_efficacy", "rte_s", "avg_gap"}
    assert all(0 <= summary[k] <= 1 for k in ("ua", "ra", "ta", "mia_efficacy", "avg_gap"))
    sets = json.loads((run / "sets.json").read_text())
    f, r = set(sets["forget"]), set(sets["retain"])
    assert not f & r and len(f) + len(r) == sets["n_train"] == 540  # 600 minus 10% val
    assert len(sets["test"]) == 300 and sets["forget_spec"] == "class:3"
    assert (run / "model.safetensors").is_file()
    config = (run / "config.yaml").read_text()
    assert "method: salun" in config and "command: unlearn" in config
    assert f"run: {run}" in out
    assert _digest(ckpt) == before  # the original checkpoint is never modified


def test_retrain_ref_gives_avg_gap_and_must_match(ckpt, tmp_path, capsys):
    assert _unlearn(ckpt, tmp_path, "ref", "--method", "retrain", "--forget", "random:0.1") == 0
    ref = tmp_path / "ref"
    assert set(json.loads((ref / "summary.json").read_text())) == {
        "ua", "ra", "ta", "mia_efficacy", "rte_s"
    }  # fmt: skip
    code = _unlearn(ckpt, tmp_path, "ft", "--method", "ft", "--forget", "random:0.1",
                    "--retrain-ref", str(ref))  # fmt: skip
    assert code == 0
    assert "avg_gap" in json.loads((tmp_path / "ft" / "summary.json").read_text())
    capsys.readouterr()
    code = _unlearn(ckpt, tmp_path, "bad", "--method", "ft", "--forget", "random:0.2",
                    "--retrain-ref", str(ref))  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "forgot a different set" in err
    code = _unlearn(ckpt, tmp_path, "bad2", "--forget", "random:0.1", "--retrain-ref",
                    str(tmp_path / "ft"))  # fmt: skip
    assert code == 2 and "is not a Retrain run" in capsys.readouterr().err


def test_bench_writes_table_csv_and_plot(ckpt, tmp_path, capsys):
    code = main(["--quiet", "unlearn-bench", "--ckpt", str(ckpt), *FAST, "--forget",
                 "random:0.1", "--methods", "ft", "salun", "--prune", "0.8", "--out",
                 str(tmp_path), "--name", "b"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    run = tmp_path / "b"
    table = (run / "table.md").read_text()
    assert table.startswith("| method | sparsity | UA % | RA % | TA % | MIA % | Avg. Gap |")
    lines = table.strip().splitlines()
    assert len(lines) == 2 + 6 and table in out
    assert [ln.split("|")[1].strip() for ln in lines[2:]] == ["retrain", "ft", "salun"] * 2
    assert "| retrain | 80% |" in table
    csv = (run / "table.csv").read_text().splitlines()
    assert csv[0].startswith("method,sparsity,ua,ra,ta,mia_efficacy,avg_gap,rte_s")
    assert len(csv) == 7
    assert (run / "table.png").stat().st_size > 5000
    assert len(json.loads((run / "summary.json").read_text())["rows"]) == 6


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--forget", "random:1.5"], "forget fraction 1.5 is not allowed"),
        (["--forget", "random:0"], "forget fraction 0 is not allowed"),
        (["--forget", "class:10"], "class 10 does not exist; allowed 0..9"),
        (["--forget", "class:0,1,2,3,4,5,6,7,8,9"], "leaves the retain set empty"),
        (["--dataset", "fashion-mnist"], "trained on digits, not on the requested"),
        (["--method", "scrub"], "'scrub' is not known"),
        (["--prune", "1.0"], "prune=1.0 is not allowed"),
        (["--saliency", "0"], "saliency=0.0 is not allowed"),
        (["--retrain-ref", "/nonexistent/run"], "not found: /nonexistent/run"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(ckpt, args, needle, tmp_path, capsys):
    before = _digest(ckpt)
    code = main(["unlearn", "--ckpt", str(ckpt), *FAST, *args, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sparta: error:") and needle in lines[0]
    assert _digest(ckpt) == before


def test_missing_checkpoint(tmp_path, capsys):
    code = main(["unlearn", "--ckpt", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert code == 2 and "not found" in capsys.readouterr().err
