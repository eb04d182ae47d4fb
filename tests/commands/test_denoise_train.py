"""``sparta train --denoiser dncnn --target CKPT [--black-box]``: the composed model is trained
around a fixed classifier, saved, reloaded and certified; bad input: one line, exit 2."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch
import yaml

import sparta
from sparta.cli import main
from sparta.models import DenoisedClassifier
from tests.killed_run import ENV, SPARTA, kill_after_first_epoch_and_resume, same_weights

BASE = ["--dataset", "digits", "--model", "lenet300", "--width", "0.25", "--batch-size", "64"]
DENOISE = ["--denoiser", "dncnn", "--denoiser-depth", "3", "--denoise-pretrain-epochs", "1"]
DENOISE += ["--optimizer", "adam", "--lr", "0.001", "--epochs", "2"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    out = tmp_path_factory.mktemp("clf")
    assert main(["--quiet", "train", *BASE, "--epochs", "2", "--out", str(out), "--name", "c"]) == 0
    return out / "c"


def test_black_box_run_counts_queries_keeps_the_classifier_and_certifies(target, tmp_path):
    args = ["--quiet", "train", *BASE, *DENOISE, "--target", str(target), "--black-box"]
    args += ["--ae-latent", "8", "--denoise-q", "3", "--out", str(tmp_path), "--name", "zo"]
    assert main(args) == 0
    run = tmp_path / "zo"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["black_box"] is True and config["best_metric"] == "val_noisy_acc"
    n_train = json.loads((run / "summary.json").read_text())["n_train"]
    # per epoch and example: its clean label, the loss at its code, 3 directions
    assert [r["queries"] for r in rows] == [n_train * 5, 2 * n_train * 5]
    assert all(0 <= r["val_noisy_acc"] <= 1 for r in rows)
    model = sparta.load(run)
    clf = sparta.load(target)
    assert isinstance(model, DenoisedClassifier) and model.has_autoencoder
    for key, value in clf.state_dict().items():  # the black box was never changed
        assert torch.equal(model.classifier.state_dict()[key], value)
    cert = ["--quiet", "certify", "--ckpt", str(run), "--method", "smooth", "--sigma", "0.25"]
    cert += ["--n", "4", "--n-samples", "100", "--n0", "10", "--alpha", "0.01"]
    assert main([*cert, "--out", str(tmp_path), "--name", "cert"]) == 0
    summary = json.loads((tmp_path / "cert" / "summary.json").read_text())
    assert summary["method"] == "smooth" and summary["n_examples"] == 4


def test_first_order_run_has_no_queries_and_no_autoencoder(target, tmp_path):
    args = ["--quiet", "train", *BASE, *DENOISE, "--epochs", "1", "--target", str(target)]
    assert main([*args, "--out", str(tmp_path), "--name", "fo"]) == 0
    rows = (tmp_path / "fo" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(rows[-1])["queries"] == 0
    assert not sparta.load(tmp_path / "fo").has_autoencoder


def test_killed_black_box_run_resumes_to_the_same_weights(target, tmp_path):
    args = [*SPARTA, "train", *BASE, *DENOISE, "--target", str(target), "--black-box"]
    args += ["--ae-latent", "8", "--denoise-q", "2", "--out", str(tmp_path)]
    rows = kill_after_first_epoch_and_resume(args, tmp_path, "killed")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[-1]["queries"] == 2 * rows[0]["queries"]
    subprocess.run([*args, "--name", "whole"], check=True, env=ENV, capture_output=True)
    assert same_weights(tmp_path / "killed", tmp_path / "whole")


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--denoiser", "dncnn"], "target"),
        (["--denoiser", "dncnn", "--target", "no/such/run"], "no/such/run"),
        (["--denoiser", "unet", "--target", "x"], "denoiser"),
        (["--black-box"], "black_box"),
        (["--denoiser", "dncnn", "--target", "TARGET", "--denoise-q", "0"], "denoise_q"),
        (["--denoiser", "dncnn", "--target", "TARGET", "--denoise-sigma", "0"], "denoise_sigma"),
        (["--denoiser", "dncnn", "--target", "TARGET", "--adv", "pgd"], "--denoiser"),
    ],
)
def test_bad_input_is_one_line_exit_2(target, tmp_path, capsys, extra, needle):
    extra = [str(target) if a == "TARGET" else a for a in extra]
    code = main(["train", *BASE, "--epochs", "1", *extra, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.iterdir())  # no folder left behind
