import os
import socket
import subprocess
import sys

import torch
from safetensors.torch import load_file

from sparta import data as sdata
from sparta import models

ARGS = [
    "--quiet",
    "train",
    "--dataset",
    "digits",
    "--model",
    "lenet300",
    "--epochs",
    "1",
    "--batch-size",
    "5",
    "--train-subset",
    "1003",
    "--val-fraction",
    "0",
    "--lr",
    "0.05",
    "--weight-decay",
    "0.0005",
    "--best-metric",
    "",
]


def test_two_process_gloo_run_matches_one_process(tmp_path):
    # global batches of 5 split 3/2 across the two ranks, and the last one (3) splits 2/1:
    # every step is uneven, so only share-weighted losses give the single-process step
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-m", "sparta", *ARGS, "--out", str(tmp_path), "--name", "single"],
        check=True,
        env=env,
        capture_output=True,
    )
    with socket.socket() as s:  # a free port: a fixed one clashes with other runs
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            f"--master_port={port}",
            "-m",
            "sparta",
            *ARGS,
            "--out",
            str(tmp_path),
            "--name",
            "ddp",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    a = load_file(str(tmp_path / "single" / "model.safetensors"))
    b = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k
    # the weights moved away from the shared init, so the match is not trivial
    torch.manual_seed(0)
    init = models.create("lenet300", dataset=sdata.info("digits")).state_dict()
    assert max((a[k] - init[k]).abs().max().item() for k in a) > 1e-3
