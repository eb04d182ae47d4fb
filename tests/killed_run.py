"""Kill a real training process after its first epoch and resume it (the resume tests)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
SPARTA = [sys.executable, "-m", "sparta", "--quiet"]  # the CLI in a fresh process


def kill_after_first_epoch_and_resume(
    args: list[str], out: Path, name: str
) -> list[dict[str, Any]]:
    """Start ``args --name name`` (a command writing run folders under ``out``), SIGKILL it
    as soon as its first epoch checkpoint exists, check that it did not finish, run it again
    with ``--resume``; returns the rows of the resumed run's metrics.jsonl."""
    proc = subprocess.Popen(
        [*args, "--name", name], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    first = out / name / "checkpoints" / "epoch_0001.json"
    deadline = time.time() + 120
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / name / "model.safetensors").exists(), "run was not interrupted"
    subprocess.run([*args, "--name", name, "--resume"], check=True, env=ENV, capture_output=True)
    lines = (out / name / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def same_weights(a: Path, b: Path) -> bool:
    """Whether two run folders' ``model.safetensors`` hold bit-identical tensors."""
    ta, tb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
