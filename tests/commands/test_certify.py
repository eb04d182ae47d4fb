"""``sparta certify``: summaries of bound methods, BaB and smoothing; bad input: exit 2."""

import json

import pytest
import torch

import sparta
from sparta import models
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


@pytest.mark.parametrize("method", ["ibp", "crown", "alpha-crown", "bab"])
def test_certify_writes_summary(run_dir, tmp_path, capsys, method):
    args = ["--quiet", "certify", "--ckpt", str(run_dir), "--method", method, "--eps", "0.01"]
    code = main([*args, "--n", "20", "--timeout", "1", "--out", str(tmp_path), "--name", "c"])
    out = capsys.readouterr().out
    assert code == 0, out
    s = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert s["method"] == method and s["eps"] == 0.01 and s["n"] == 20
    assert sum(s[k] for k in ("verified", "falsified", "unknown", "wrong")) == 20
    assert 0 <= s["verified_acc"] <= s["clean_acc"] <= 1 and s["time_per_image_s"] > 0
    assert s["clean_acc"] > 0.5 and "verified_acc=" in out
    png = tmp_path / "c" / "verified_acc.png"  # the verified / unknown / ... split
    assert png.read_bytes()[:4] == b"\x89PNG" and f"plot: {png}" in out


def test_tighter_methods_verify_more(run_dir, tmp_path):
    acc = {}
    for method in ("ibp", "crown", "bab"):
        args = ["--quiet", "certify", "--ckpt", str(run_dir), "--method", method]
        args += ["--eps", "0.05", "--n", "30", "--timeout", "2"]
        assert main([*args, "--out", str(tmp_path), "--name", method]) == 0
        acc[method] = json.loads((tmp_path / method / "summary.json").read_text())["verified_acc"]
    assert acc["ibp"] < acc["crown"] <= acc["bab"]


def test_certify_smooth(run_dir, tmp_path):
    args = ["--quiet", "certify", "--ckpt", str(run_dir), "--method", "smooth", "--sigma", "0.25"]
    args += ["--n", "5", "--n-samples", "200", "--n0", "20", "--alpha", "0.01"]
    assert main([*args, "--out", str(tmp_path), "--name", "s"]) == 0
    s = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert s["method"] == "smooth" and any(k.startswith("certified_acc_r") for k in s)


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--method", "crown", "--eps", "-0.1"], "eps"),
        (["--method", "lp", "--eps", "0.1"], "method"),
        (["--method", "smooth", "--sigma", "0"], "sigma"),
        (["--method", "smooth", "--alpha", "1.5"], "alpha"),
        (["--method", "bab", "--eps", "0.1", "--timeout", "0"], "timeout"),
        (["--method", "bab", "--eps", "0.1", "--bab-bound", "lp"], "bab_bound='lp'"),
        (["--method", "bab", "--eps", "0.1", "--bab-branching", "x"], "bab_branching='x'"),
    ],
)
def test_bad_input_is_one_line_exit_2(run_dir, tmp_path, capsys, extra, needle):
    code = main(["certify", "--ckpt", str(run_dir), *extra, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_unsupported_layer_is_one_line_exit_2(tmp_path, capsys):
    model = models.create("vit-tiny", dataset="digits")
    sparta.save(model, tmp_path / "vit")
    code = main(
        ["certify", "--ckpt", str(tmp_path / "vit"), "--eps", "0.01", "--out", str(tmp_path)]
    )
    err = capsys.readouterr().err
    assert code == 2 and "LayerNorm" in err and len(err.strip().splitlines()) == 1
