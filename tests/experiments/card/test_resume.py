"""A card killed with SIGKILL resumes where it was: finished cells are not recomputed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from sparta.experiments.card import card

from .conftest import TINY, cli_args

OPTS = {**TINY, "variants": ["dense", "oneshot"], "pillars": ["accuracy"], "finetune_epochs": 30}


def test_resume_after_a_real_kill(tmp_path):
    args = [sys.executable, "-m", "sparta", "--quiet", "card", *cli_args(OPTS)]
    args += ["--out", str(tmp_path), "--name", "killed"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cells = tmp_path / "killed" / "cells"
    dense = cells / "dense-0.00" / "summary.json"
    deadline = time.time() + 120
    while not dense.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert dense.exists(), "the dense cell never finished"
    assert not (cells / "oneshot-0.50" / "summary.json").exists(), "card was not interrupted"
    dense_bytes = (cells / "dense-0.00" / "model.safetensors").read_bytes()

    resumed = card(**OPTS, out=tmp_path, name="killed", resume=True, quiet=True)
    assert "dense" in resumed.skipped and "dense" not in resumed.computed
    assert "oneshot 50%" in resumed.computed
    assert (cells / "dense-0.00" / "model.safetensors").read_bytes() == dense_bytes
    whole = card(**OPTS, out=tmp_path, name="whole", quiet=True)
    assert [r["values"] for r in resumed.card["rows"]] == [r["values"] for r in whole.card["rows"]]
