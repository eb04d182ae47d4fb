"""``sparta attack``: summary.json and plot on a tiny digits run; bad input: one line, exit 2."""

import json

import pytest
import torch

import sparta.attacks.apgd  # noqa: F401  (registers apgd-ce, apgd-t)
import sparta.attacks.fab  # noqa: F401  (registers fab-t)
import sparta.attacks.square  # noqa: F401  (registers square)
import sparta.attacks.whitebox  # noqa: F401  (registers pgd, fgsm)
from sparta.cli import main

TRAIN = ["--dataset", "digits", "--model", "lenet300", "--width", "0.25", "--epochs", "2"]
TRAIN += ["--batch-size", "64", "--lr", "0.05"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    assert main(["--quiet", "train", *TRAIN, "--out", str(root), "--name", "std"]) == 0
    yield root / "std"
    torch.set_num_threads(threads)


def test_attack_writes_summary_and_plot(run_dir, tmp_path, capsys):
    args = ["--quiet", "attack", "--ckpt", str(run_dir), "--eps", "0.1", "--suite", "fast"]
    args += ["--n", "60", "--steps", "5", "--eps-curve", "0.05,0.3"]
    code = main([*args, "--out", str(tmp_path), "--name", "a"])
    out = capsys.readouterr().out
    assert code == 0, out
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert {"clean_acc", "robust_acc", "robust_acc_apgd_ce", "robust_acc_apgd_t"} <= set(summary)
    assert summary["n"] == 60 and summary["eps"] == 0.1 and summary["norm"] == "linf"
    assert isinstance(summary["warnings"], list)
    assert summary["robust_acc"] <= summary["robust_acc_apgd_ce"] <= summary["clean_acc"]
    assert summary["clean_acc"] > 0.5
    curve = {c["eps"]: c["robust_acc"] for c in summary["curve"]}
    assert set(curve) == {0.05, 0.1, 0.3} and curve[0.3] <= curve[0.05]
    assert (tmp_path / "a" / "robust_acc_vs_eps.png").stat().st_size > 5000
    assert "robust_acc=" in out and f"run: {tmp_path / 'a'}" in out


def test_custom_attacks(run_dir, tmp_path, capsys):
    args = ["attack", "--ckpt", str(run_dir), "--eps", "0.1", "--attacks", "fgsm,pgd"]
    assert main([*args, "--n", "40", "--steps", "3", "--out", str(tmp_path), "--name", "c"]) == 0
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert summary["suite"] == "custom" and summary["attacks"] == ["fgsm", "pgd"]
    assert summary["robust_acc_pgd"] <= summary["robust_acc_fgsm"]


def test_standard_suite_is_the_default(run_dir, tmp_path):
    args = ["--quiet", "attack", "--ckpt", str(run_dir), "--eps", "0.1", "--n", "30"]
    code = main([*args, "--steps", "3", "--queries", "30", "--out", str(tmp_path), "--name", "s"])
    assert code == 0
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["suite"] == "standard"
    assert summary["attacks"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    accs = [summary[f"robust_acc_{a}"] for a in ("apgd_ce", "apgd_t", "fab_t", "square")]
    assert accs == sorted(accs, reverse=True) and accs[-1] == summary["robust_acc"]


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--eps=-0.1"], "eps=-0.1"),
        (["--eps", "0.1", "--norm", "l1"], "norm 'l1'"),
        (["--eps", "0.1", "--attacks", "pgd,nope"], "attack 'nope' is not known"),
        (["--eps", "0.1", "--suite", "strong"], "suite 'strong'"),
        (["--eps", "0.1", "--suite", "custom"], "needs a list of attacks"),
        (["--eps", "0.1", "--queries", "0"], "queries=0"),
        (["--eps", "0.1", "--steps", "0"], "steps=0"),
        (["--eps", "0.1", "--suite", "fast", "--n", "0"], "n=0"),
        (["--eps", "0.1", "--eps-curve", "0.1,x"], "--eps-curve"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needle, tmp_path, capsys):
    code = main(["attack", "--ckpt", str(tmp_path), *args, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sparta: error:") and needle in lines[0], err


def test_missing_checkpoint(tmp_path, capsys):
    code = main(["attack", "--ckpt", str(tmp_path / "none"), "--eps", "0.1", "--suite", "fast"])
    assert code == 2 and "not found" in capsys.readouterr().err
