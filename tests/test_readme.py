"""README.md runs as written: its two quick-tour sections, on small settings.

The ```python blocks of "Quick tour: Python" run in order in one namespace, in a fresh
process with a temporary working directory. Each ``sparta ...`` line of the ```bash block of
"Quick tour: command line" runs in order in one temporary folder (later lines find the run
folders earlier lines made by the README's names), with the small-settings flags of
:data:`SMALL` appended (argparse: the last flag wins) so the tour takes seconds, on the
bundled digits data set instead of Fashion-MNIST.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.killed_run import ENV

README = Path(__file__).resolve().parents[1] / "README.md"
CLI_SECTION, PYTHON_SECTION = "Quick tour: command line", "Quick tour: Python"
CARD_SECTION = "The report card"  # its lines run after the tour's (they read the tour's runs)
#: the project's own files the README's lines name, copied into the test's folder
PROJECT_FILES = ("configs/card-demo.yaml",)

TRAIN = ["--dataset", "digits", "--epochs", "2", "--batch-size", "64"]
#: what is appended to a tour line, per command: the data set (digits), epochs and the
#: number of examples, queries, samples and rounds; everything else runs as written
SMALL: dict[str, list[str]] = {
    "datasets": [],
    "models": [],
    "list": [],
    "train": [*TRAIN],
    "eval": ["--subset", "200"],
    "prune": [*TRAIN],
    "export": ["--latency-repeats", "2"],
    "lottery": [*TRAIN, "--levels", "2"],
    "pool": ["--coefficients", "0.3", "0.7"],
    "attack": ["--n", "16", "--steps", "3", "--queries", "40"],
    "certify": ["--n", "8", "--timeout", "1", "--n-samples", "200", "--n0", "20"],
    "unlearn": ["--epochs", "1", "--retrain-epochs", "1", "--prune-finetune", "1"],
    "unlearn-bench": ["--epochs", "1", "--retrain-epochs", "1", "--prune-finetune", "1"],
    "backdoor detect": [
        *("--subset", "300", "--rounds", "2", "--retrain-epochs", "1", "--finetune-steps"),
        *("2", "--score-batches", "1", "--recover-steps", "5", "--recover-n", "16"),
    ],
    "backdoor recover": ["--n", "16", "--steps", "5"],
    "backdoor remove": ["--epochs", "1", "--retrain-epochs", "1"],
    "card": [
        *("--dataset", "digits", "--epochs", "1", "--train-subset", "300", "--test-subset"),
        *("100", "--sparsities", "0.5", "--pillars", "accuracy", "efficiency", "--gmp-epochs"),
        *("1", "--finetune-epochs", "1", "--adv-epochs", "1", "--latency-repeats", "2"),
    ],
    "report": [],
    "bip": [*TRAIN],
    "hydra": ["--epochs", "1", "--score-epochs", "1", "--attack-steps", "2"],
    "double-win": [  # its class-split names (x:y) stay, as a reader's own data does
        *("--dataset", "digits", "--train-subset", "500", "--test-subset", "200", "--epochs"),
        *("1", "--steps", "4", "--adv-steps", "1", "--eval-steps", "2", "--fractions", "0.1"),
        *("--seeds", "1", "--batch-size", "64"),
    ],
    "anytime": [*TRAIN, "--megabatches", "2", "--train-subset", "300"],
}
#: tour lines that are not ``sparta`` lines and why they are not run here
NOT_RUN = {"torchrun": "two processes; tests/train/test_distributed.py runs torchrun"}
#: the reader's own files the tour names, which the test provides (see :func:`_own_files`)
OWN_FILES = {"/path/to/images": "images"}  # README path -> folder under the test's cwd


def section(title: str, text: str | None = None) -> str:
    """The text of README.md's ``## title`` section (up to the next ``## ``)."""
    text = README.read_text() if text is None else text
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md has no section {title!r}"
    return match.group(1)


def blocks(lang: str, text: str) -> list[str]:
    """The fenced ```lang code blocks of ``text``."""
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.M | re.S)


def tour_commands() -> list[list[str]]:
    """The ``sparta`` lines of the command-line tour, then of the report card's section, as
    argument lists (comments removed)."""
    lines = []
    for block in [*blocks("bash", section(CLI_SECTION)), *blocks("bash", section(CARD_SECTION))]:
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if not argv:
                continue
            if argv[0] != "sparta":
                assert argv[0] in NOT_RUN, f"README tour line is not a sparta command: {line}"
                continue
            lines.append(argv[1:])
    return lines


def command_of(argv: list[str]) -> str:
    """``backdoor detect`` for the backdoor sub-commands, else the first word."""
    return " ".join(argv[:2]) if argv[0] == "backdoor" else argv[0]


def small_args(argv: list[str]) -> list[str]:
    """``argv`` with the small-settings flags of its command appended."""
    command = command_of(argv)
    assert command in SMALL, f"README tour runs {command!r}: add its small settings to SMALL"
    extra = SMALL[command]
    if _own_dataset(argv):  # the reader's data (import path, image folder) stays
        i = extra.index("--dataset")
        extra = extra[:i] + extra[i + 2 :]
    return [*argv, *extra]


def _own_dataset(argv: list[str]) -> bool:
    """Whether ``argv`` names a dataset by import path or image folder (``x:y``)."""
    return any(a == "--dataset" and ":" in b for a, b in zip(argv, argv[1:], strict=False))


def test_the_tour_lines_are_found() -> None:
    commands = [command_of(a) for a in tour_commands()]
    assert len(commands) >= 25 and set(commands) == set(SMALL)
    assert len(blocks("python", section(PYTHON_SECTION))) >= 2


def with_own_files(argv: list[str], root: Path) -> list[str]:
    """``argv`` with the README's placeholder paths replaced by the test's files."""
    for readme_path, local in OWN_FILES.items():
        argv = [a.replace(readme_path, str(root / local)) for a in argv]
    return argv


def _own_files(root: Path) -> None:
    """What a reader brings: ``my.yaml`` (train options), ``my_pkg`` (``models:make_net``,
    ``data:load``) and an image folder with one sub-folder of PNGs per class."""
    import numpy as np
    from PIL import Image

    (root / "my.yaml").write_text("model: lenet300\nlr: 0.05\nwidth: 0.5\n")

    pkg = root / "my_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text(
        "from torch import nn\n\n\n"
        "def make_net(num_classes, input_shape):\n"
        "    c, h, w = input_shape\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 32), nn.ReLU(),\n"
        "                         nn.Linear(32, num_classes))\n"
    )
    (pkg / "data.py").write_text(
        "from sparta import data\n\n\n"
        "def load():\n"
        "    return data.load('digits', 'train'), data.load('digits', 'test')\n"
    )
    rng = np.random.default_rng(0)
    for label in range(3):
        folder = root / OWN_FILES["/path/to/images"] / f"class{label}"
        folder.mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 80, (8, 8), dtype=np.uint8) + 60 * label
            Image.fromarray(pixels, mode="L").save(folder / f"{i}.png")


def test_command_line_tour_runs_as_written(tmp_path, monkeypatch, capsys) -> None:
    from sparta.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    _own_files(tmp_path)
    for name in PROJECT_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text((README.parent / name).read_text())
    for argv in tour_commands():
        full = ["--quiet", *small_args(with_own_files(argv, tmp_path))]
        code = main(full)
        out = capsys.readouterr()
        assert code == 0, f"sparta {shlex.join(full)} exited {code}: {out.err.strip()}"
    runs = tmp_path / "runs"
    for name in ("lenet5", "lenet5-chan", "ibp", "noisy", "trojan", "det"):  # read by later lines
        assert (runs / name / "config.yaml").is_file(), name
    assert json.loads((runs / "lenet5-chan-compact/summary.json").read_text())["latency_b1_ms"]
    mine = yaml.safe_load((runs / "mine/config.yaml").read_text())
    assert (mine["model"], mine["dataset"]) == ("my_pkg.models:make_net", "my_pkg.data:load")
    folders = [yaml.safe_load(p.read_text()).get("dataset") for p in runs.glob("*/config.yaml")]
    assert f"folder:{tmp_path / 'images'}" in folders
    for card in ("demo", "mycard"):
        assert (runs / card / "card.html").is_file() and (runs / card / "card.json").is_file()
    report = next(runs.glob("report-*"))
    rows = json.loads((report / "card.json").read_text())["rows"]
    assert len(rows) >= 3  # lenet5 (with its evals), lenet5-chan, ibp


_RUNNER = """
import json, sys
namespace = {"__name__": "__readme__"}
for i, code in enumerate(json.load(open(sys.argv[1]))):
    exec(compile(code, f"README.md python block {i + 1}", "exec"), namespace)
print("README-OK")
"""


@pytest.mark.parametrize("title", [PYTHON_SECTION, CARD_SECTION])
def test_python_blocks_run_as_written(tmp_path, title) -> None:
    code = blocks("python", section(title))
    assert code
    (tmp_path / "blocks.json").write_text(json.dumps(code))
    env = {**ENV, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, "blocks.json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0 and "README-OK" in proc.stdout, proc.stderr[-3000:]
