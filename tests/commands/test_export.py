"""``sparta export``: compact / CSR / BSR run folders, summaries and one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

import sparta
from sparta import models
from sparta.cli import main
from sparta.data.base import DatasetInfo
from sparta.sparsity.channels import prune_channels
from sparta.sparsity.masks import attach
from sparta.sparsity.topk import global_masks

DIGITS = DatasetInfo("digits", (1, 8, 8), 10, (0.3,), (0.4,))
MISSING = DatasetInfo("no-such-data", (3, 8, 8), 4, (0.5,), (0.25,))


@pytest.fixture
def ckpts(tmp_path):
    torch.manual_seed(0)
    chan = models.create("vgg11", MISSING, width=0.125)
    prune_channels(chan, 0.5, "l1")
    sparta.save(chan, tmp_path / "chan")
    unstr = models.create("lenet300", DIGITS, width=0.5)
    scores = {n: p.detach().abs() for n, p in unstr.named_parameters() if n.endswith("weight")}
    attach(unstr, global_masks(scores, 0.9))
    sparta.save(unstr, tmp_path / "unstr")
    sparta.save(models.create("lenet300", DIGITS, width=0.5), tmp_path / "dense")
    return tmp_path


def _summary(capsys, args):
    code = main(args)
    out = capsys.readouterr()
    assert code == 0, out.err
    run = out.out.strip().splitlines()[-1].removeprefix("run: ")
    s = json.loads(open(f"{run}/summary.json").read())
    assert f"batch 1 {s['latency_b1_ms']:.3g} exported vs" in out.out
    assert f"batch 256 {s['latency_b256_ms']:.3g} exported vs" in out.out
    return s, run


def _check_latency(s, n) -> None:
    """Exported and masked latencies at batch 1 and 256, and their ratio, are recorded."""
    for b in (1, 256):
        exported, masked = s[f"latency_b{b}_ms"], s[f"latency_b{b}_ms_masked"]
        assert exported > 0 and masked > 0
        assert s[f"speedup_b{b}"] == pytest.approx(masked / exported)
    assert s["latency_b256_inputs"] == n and 1 <= n <= 256


def test_compact_export_writes_a_loadable_smaller_model(ckpts, capsys) -> None:
    root = ckpts / "runs"
    s, run = _summary(
        capsys,
        [
            "export",
            "--ckpt",
            str(ckpts / "chan"),
            "--format",
            "compact",
            "--out",
            str(root),
            "--batch",
            "8",
        ],
    )
    assert s["inputs"] == "random" and s["n_inputs"] == 8
    assert s["max_abs_diff"] <= 1e-5
    assert s["param_fraction"] < 0.5 and s["mac_fraction"] < 0.5
    assert s["size_bytes"] < s["size_bytes_dense"]
    assert 0.4 < s["channel_sparsity"] < 0.6
    _check_latency(s, n=256)
    small = sparta.load(run)
    assert models.count_params(small) == s["params"]
    # BatchNorm folded by default; the measured inference mode is saved with the model
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in small.modules())
    assert small.sparta_inference["mode"] == s["inference_mode"]


def test_compact_export_without_folding_in_a_chosen_mode(ckpts, capsys) -> None:
    s, run = _summary(
        capsys,
        [
            *("export", "--ckpt", str(ckpts / "chan"), "--format", "compact"),
            *("--no-fold-bn", "--inference", "channels_last", "--out", str(ckpts / "runs")),
            *("--batch", "8", "--latency-repeats", "1"),
        ],
    )
    assert s["inference_mode"] == "channels_last" and s["max_abs_diff"] <= 1e-5
    small = sparta.load(run)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in small.modules())
    assert small.sparta_inference == {"mode": "channels_last"}


@pytest.mark.parametrize("fmt", ["csr", "bsr"])
def test_sparse_export_uses_the_test_split(ckpts, capsys, fmt) -> None:
    s, run = _summary(
        capsys,
        [
            "export",
            "--ckpt",
            str(ckpts / "unstr"),
            "--format",
            fmt,
            "--blocksize",
            "2",
            "--out",
            str(ckpts / "runs"),
        ],
    )
    assert s["inputs"] == "test" and s["max_abs_diff"] <= 1e-5
    assert s["size_fraction"] < 0.5 and s["param_fraction"] < 0.5
    assert "fc1" in s["sparse_layers"]
    _check_latency(s, n=s["latency_b256_inputs"])
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(sparta.load(run)(x), sparta.load(ckpts / "unstr")(x), atol=1e-5)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--ckpt", "dense", "--format", "compact"], "no channel masks"),
        (["--ckpt", "dense", "--format", "csr"], "no masks"),
        (["--ckpt", "nowhere", "--format", "csr"], "not found"),
        (["--ckpt", "unstr", "--format", "bsr", "--blocksize", "0"], "blocksize"),
        (["--ckpt", "unstr", "--format", "coo"], "invalid choice"),
        (["--ckpt", "unstr", "--format", "csr", "--inference", "tensorrt"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2(ckpts, capsys, args, needle) -> None:
    args = [str(ckpts / a) if a in ("dense", "nowhere", "unstr") else a for a in args]
    code = main(["export", *args, "--out", str(ckpts / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
