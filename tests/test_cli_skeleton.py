"""The command skeleton: --help everywhere, options from --config / flags / a resumed run's
config.yaml, checks before data and folders, evaluations recorded inside a model's run folder,
nothing replaced without --overwrite, --quiet/--version, whole error messages, rank 0 only."""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

import sparta
from sparta import data as sdata
from sparta.cli import build_parser, main

QUICK = ["--dataset", "digits", "--model", "lenet300", "--width", "0.25", "--batch-size", "64"]
QUICK += ["--lr", "0.05", "--train-subset", "400", "--test-subset", "100"]


def _run(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("skeleton")
    assert (
        main(["--quiet", "train", *QUICK, "--epochs", "1", "--out", str(root), "--name", "m"]) == 0
    )
    return root / "m"


def _command_paths(parser, prefix=()):
    """Every command and sub-command path, e.g. ('backdoor', 'detect')."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _command_paths(sub, (*prefix, name))


def test_help_works_for_every_command_and_sub_command(capsys):
    paths = list(_command_paths(build_parser()))
    assert ("backdoor", "detect") in paths and ("eval",) in paths and len(paths) >= 15
    for path in paths:
        code, out, err = _run([*path, "--help"], capsys)
        assert code == 0 and out.startswith("usage: sparta " + " ".join(path)), (path, err)


def test_every_command_is_a_command_subclass():
    """Every leaf command runs through Command.main (one skeleton: options, --config,
    checks before data, run folders); only `backdoor` groups sub-commands."""
    from sparta.cli import Command

    parser = build_parser()
    leaves = 0
    for path in _command_paths(parser):
        sub = parser
        for name in path:
            sub = next(
                a for a in sub._actions if isinstance(a, argparse._SubParsersAction)
            ).choices[name]
        func = sub.get_default("func")
        if func is None:
            assert path == ("backdoor",), path
            continue
        owner = getattr(func, "__self__", None)
        assert isinstance(owner, type) and issubclass(owner, Command), (path, func)
        assert owner.name == path[-1]
        leaves += 1
    assert leaves >= 17


def test_version_and_quiet_after_the_sub_command(capsys):
    code, out, _ = _run(["--version"], capsys)
    assert code == 0 and out.strip() == f"sparta {sparta.__version__}"
    parse = build_parser().parse_args
    assert parse(["eval", "--ckpt", "x", "--quiet"]).quiet is True
    assert parse(["--quiet", "eval", "--ckpt", "x"]).quiet is True
    assert parse(["eval", "--ckpt", "x"]).quiet is False
    assert parse(["backdoor", "detect", "--ckpt", "x", "--quiet"]).quiet is True


def test_import_sparta_reaches_subpackages_lazily():
    code = (
        "import sys, sparta\n"
        "assert 'sparta.attacks' not in sys.modules and 'sparta.certify' not in sys.modules\n"
        "import importlib.util as u\n"
        "names = [n for n in sparta.SUBPACKAGES if u.find_spec('sparta.' + n)]\n"
        "assert len(names) >= 10, names\n"
        "for n in names:\n"
        "    assert getattr(sparta, n) is sys.modules['sparta.' + n], n\n"
        "assert sparta.attacks.__name__ == 'sparta.attacks'\n"
        "try:\n"
        "    sparta.nothing\n"
        "except AttributeError as e:\n"
        "    assert 'nothing' in str(e)\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(sparta.__file__).parents[1])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["train", "--augment", "foo", "--name", "aug"], "foo"),
        (["train", "--model", "resnet9000", "--name", "aug"], "resnet9000"),
        (["lottery", "--model", "resnet9000", "--name", "aug"], "resnet9000"),
        (["prune", "--method", "nope", "--name", "aug"], "nope"),
        (["eval", "--ckpt", "CKPT", "--dataset", "nope", "--name", "aug"], "nope"),
        (["certify", "--ckpt", "CKPT", "--eps", "1.5", "--name", "aug"], "eps=1.5"),
        (["unlearn", "--ckpt", "CKPT", "--method", "nope", "--name", "aug"], "nope"),
        (["unlearn", "--ckpt", "CKPT", "--forget", "some:1", "--name", "aug"], "some:1"),
        (["train", "--override", "lr", "--name", "aug"], "only applies with --resume"),
    ],
)
def test_bad_names_fail_before_any_data_and_leave_no_folder(
    args, needle, trained, tmp_path, capsys, monkeypatch
):
    def no_data(*a, **k):
        raise AssertionError("data was loaded before the input was checked")

    monkeypatch.setattr(sdata, "load", no_data)
    args = [str(trained) if a == "CKPT" else a for a in args]
    code, _, err = _run([*args, "--out", str(tmp_path)], capsys)
    assert code == 2 and needle in err and "Traceback" not in err, err
    assert not (tmp_path / "aug").exists()


def test_late_bad_input_leaves_no_folder(trained, tmp_path, capsys, monkeypatch):
    from sparta.commands.eval import Eval

    def fail_after_creating(self):
        self.create_run(self.config())
        raise ValueError("late")

    monkeypatch.setattr(Eval, "run", fail_after_creating)
    code, _, err = _run(
        ["eval", "--ckpt", str(trained), "--name", "e", "--out", str(tmp_path)], capsys
    )
    assert code == 2 and "late" in err and not (tmp_path / "e").exists()


def test_multi_line_errors_are_printed_whole(trained, capsys, monkeypatch):
    from sparta.commands.eval import Eval

    def fail(self):
        raise FileNotFoundError("no such thing\n  looked for x in y\n  To get it: z")

    monkeypatch.setattr(Eval, "run", fail)
    code, _, err = _run(["eval", "--ckpt", str(trained)], capsys)
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [
        "sparta: error: no such thing",
        "  looked for x in y",
        "  To get it: z",
    ]


def test_eval_is_recorded_inside_the_run_and_never_replaces_a_folder(trained, tmp_path, capsys):
    before = sorted(p.name for p in trained.iterdir())
    code, out, _ = _run(["eval", "--ckpt", str(trained), "--subset", "50"], capsys)
    assert code == 0
    (folder,) = (trained / "evals").iterdir()
    assert folder.name.startswith("eval-") and f"run: {folder}" in out
    assert json.loads((folder / "summary.json").read_text())["n"] == 50
    assert "command: eval" in (folder / "config.yaml").read_text()
    # the same evaluation again: an error without --overwrite
    code, _, err = _run(["eval", "--ckpt", str(trained), "--subset", "50"], capsys)
    assert code == 2 and "--overwrite" in err
    assert _run(["eval", "--ckpt", str(trained), "--subset", "50", "--overwrite"], capsys)[0] == 0
    # a file inside the run folder is recorded in the run folder too
    code, out, _ = _run(["eval", "--ckpt", str(trained / "model.safetensors")], capsys)
    assert code == 0 and str(trained / "evals") in out
    # --name of the model's own folder: refused, the model is kept
    name = ["--out", str(trained.parent), "--name", trained.name]
    code, _, err = _run(["eval", "--ckpt", str(trained), *name], capsys)
    assert code == 2 and "exists" in err
    assert sorted(p.name for p in trained.iterdir()) == sorted({*before, "evals"})
    assert (trained / "model.safetensors").is_file()


def test_attack_and_certify_never_replace_a_folder(trained, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    base = ["--ckpt", str(trained), "--out", str(tmp_path), "--name", "taken"]
    for cmd in (["attack", "--eps", "0.1", "--suite", "fast", "--n", "5"],
                ["certify", "--eps", "0.01", "--method", "ibp", "--n", "5"]):  # fmt: skip
        code, _, err = _run([*cmd, *base], capsys)
        assert code == 2 and "exists" in err and "--overwrite" in err
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"


def test_config_file_fills_options_and_flags_win(trained, tmp_path, capsys):
    cfg = tmp_path / "e.yaml"
    cfg.write_text("subset: 20\nbatch_size: 7\n")
    args = ["eval", "--ckpt", str(trained), "--config", str(cfg), "--out", str(tmp_path)]
    assert _run([*args, "--name", "a"], capsys)[0] == 0
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["n"] == 20
    assert _run([*args, "--name", "b", "--subset", "30"], capsys)[0] == 0
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["n"] == 30
    assert "batch_size: 7" in (tmp_path / "b" / "config.yaml").read_text()
    cfg.write_text("subsett: 20\n")
    code, _, err = _run([*args, "--name", "c"], capsys)
    assert code == 2 and "subsett" in err and not (tmp_path / "c").exists()
    # a run's own config.yaml is a config file of its command, and of no other
    recorded = tmp_path / "b" / "config.yaml"
    again = ["eval", "--ckpt", str(trained), "--config", str(recorded), "--out", str(tmp_path)]
    assert _run([*again, "--name", "d"], capsys)[0] == 0
    assert json.loads((tmp_path / "d" / "summary.json").read_text())["n"] == 30
    other = ["attack", "--ckpt", str(trained), "--config", str(recorded), "--out", str(tmp_path)]
    code, _, err = _run([*other, "--name", "e"], capsys)
    assert code == 2 and "recorded by `sparta eval`" in err and not (tmp_path / "e").exists()


def test_eval_of_a_non_checkpoint_names_the_file(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# hi\n")
    code, _, err = _run(["eval", "--ckpt", str(readme), "--out", str(tmp_path)], capsys)
    assert code == 2 and "README.md" in err and "README.json" not in err


@pytest.mark.parametrize("extra,needle", [([], "--eps"), (["--eps", "1.5"], "eps=1.5")])
def test_certify_needs_an_eps_in_0_1(trained, tmp_path, capsys, extra, needle):
    code, _, err = _run(["certify", "--ckpt", str(trained), *extra, "--out", str(tmp_path)], capsys)
    assert code == 2 and needle in err and not list(tmp_path.iterdir())


def test_only_rank_0_prints(capsys, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    code, out, _ = _run(["models", "lenet*"], capsys)
    assert code == 0 and out == ""
    monkeypatch.setenv("RANK", "0")
    code, out, _ = _run(["models", "lenet*"], capsys)
    assert code == 0 and "lenet300" in out


def test_resume_reads_the_recorded_config_and_refuses_other_flags(tmp_path, capsys):
    out = ["--out", str(tmp_path)]
    args = ["--quiet", "train", *QUICK, "--epochs", "2", "--optimizer", "adam", *out]
    assert _run([*args, "--name", "r"], capsys)[0] == 0
    weights = load_file(str(tmp_path / "r" / "model.safetensors"))
    config = (tmp_path / "r" / "config.yaml").read_text()
    # name only: the recorded config (adam, digits, 2 epochs) is used and rewritten as it was
    assert _run(["--quiet", "train", "--name", "r", "--resume", *out], capsys)[0] == 0
    assert (tmp_path / "r" / "config.yaml").read_text() == config
    again = load_file(str(tmp_path / "r" / "model.safetensors"))
    assert all((weights[k] == again[k]).all() for k in weights)
    # the folder given to --resume works the same
    assert _run(["--quiet", "train", "--resume", str(tmp_path / "r")], capsys)[0] == 0
    # a flag that differs from the record: an error naming it, unless --override allows it
    code, _, err = _run(
        ["train", "--name", "r", "--resume", "--lr", "0.3", "--epochs", "2", *out], capsys
    )
    assert code == 2 and "--lr" in err and "--epochs" not in err
    code, _, err = _run(["--quiet", "train", "--name", "r", "--resume", "--epochs", "3",
                         "--override", "epochs", *out], capsys)  # fmt: skip
    assert code == 0, err
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["epochs"] == 3
    # nothing to resume, or a run of another command
    code, _, err = _run(["train", "--name", "none", "--resume", *out], capsys)
    assert code == 2 and "nothing to resume" in err and not (tmp_path / "none").exists()
    code, _, err = _run(["lottery", "--name", "r", "--resume", *out], capsys)
    assert code == 2 and "sparta train" in err


def test_killed_lenet5_run_resumes_from_its_name_alone(tmp_path):
    """Kill a real lenet5 run with non-default flags after epoch 1; `--name X --resume`
    alone ends where an uninterrupted run ends, bit for bit."""
    base = [sys.executable, "-m", "sparta", "--quiet", "train", "--out", str(tmp_path)]
    flags = ["--dataset", "fashion-mnist", "--model", "lenet5", "--epochs", "4"]
    flags += ["--train-subset", "3000", "--test-subset", "300", "--batch-size", "64"]
    flags += ["--lr", "0.05", "--schedule", "step", "--milestones", "2", "--seed", "3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*base, *flags, "--name", "full"], check=True, env=env, capture_output=True)
    proc = subprocess.Popen(
        [*base, *flags, "--name", "killed"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first = tmp_path / "killed" / "checkpoints" / "epoch_0001.json"
    deadline = time.time() + 120
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "model.safetensors").exists(), "run was not interrupted"
    subprocess.run(
        [*base, "--name", "killed", "--resume"], check=True, env=env, capture_output=True
    )
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "killed" / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    epochs = [
        json.loads(line)["epoch"]
        for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    ]
    assert epochs == [1, 2, 3, 4]
