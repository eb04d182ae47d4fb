"""`sparta train --poison` and `sparta backdoor detect|recover|remove`: run folders, errors."""

import json

import pytest

from sparta.cli import main

TRAIN = ["--dataset", "digits", "--model", "lenet300", "--width", "0.5", "--epochs", "6"]
TRAIN += ["--batch-size", "64", "--lr", "0.05"]


@pytest.fixture(scope="module")
def poisoned_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("backdoor")
    code = main(["--quiet", "train", *TRAIN, "--out", str(root), "--name", "p",
                 "--poison", "badnets:ratio=0.1,target=3,size=3"])  # fmt: skip
    assert code == 0
    return root / "p"


def test_poisoned_run_records_asr_and_indices(poisoned_run):
    summary = json.loads((poisoned_run / "summary.json").read_text())
    assert summary["asr"] > 0.8 and summary["test_acc"] > 0.8
    record = json.loads((poisoned_run / "poisoned_indices.json").read_text())
    eligible_share = summary["n_train"] * 0.9  # about 90% of digits are not class 3
    assert abs(record["n_poisoned"] - 0.1 * eligible_share) < 0.02 * summary["n_train"]
    assert len(set(record["indices"])) == record["n_poisoned"]


def test_detect_recover_remove(poisoned_run, tmp_path, capsys):
    out = ["--out", str(tmp_path)]
    assert main(["--quiet", "backdoor", "detect", "--ckpt", str(poisoned_run), "--rounds", "2",
                 "--finetune-steps", "3", "--subset", "300", "--recover-steps", "20",
                 *out, "--name", "d"]) == 0  # fmt: skip
    d = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert isinstance(d["trojan"], bool) and isinstance(d["score"], float)
    assert d["trojan"] == (d["target"] is not None) and d["best_level"] in (1, 2)
    assert len(d["dense_norms"]) == len(d["ticket_norms"]) == 10
    assert len(d["levels"]) == 3 and "asr" in d["levels"][0]
    assert (tmp_path / "d" / "levels.png").is_file()
    assert main(["--quiet", "backdoor", "recover", "--ckpt", str(tmp_path / "d"), "--steps", "20",
                 *out, "--name", "r"]) == 0  # fmt: skip
    r = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert "target" in r and r["on_ticket"] is True and (tmp_path / "r" / "trigger.png").is_file()
    assert main(["--quiet", "backdoor", "remove", "--ckpt", str(poisoned_run), "--method", "rl",
                 "--epochs", "1", "--mia-max", "100", *out, "--name", "u"]) == 0  # fmt: skip
    u = json.loads((tmp_path / "u" / "summary.json").read_text())
    assert {"asr_before", "asr", "test_acc_before", "test_acc"} <= set(u)
    assert (
        u["n_forget"]
        == json.loads((poisoned_run / "poisoned_indices.json").read_text())["n_poisoned"]
    )


@pytest.mark.parametrize("spec,word", [
    ("badnets:ratio=1.5,target=0", "1.5"),
    ("badnets:ratio=0.1,target=10", "target=10"),
    ("badnets:ratio=0.1,target=0,size=9", "size=9"),
    ("wanet:ratio=0.1", "wanet"),
])  # fmt: skip
def test_bad_poison_is_one_line_exit_2(tmp_path, capsys, spec, word):
    code = main(["--quiet", "train", *TRAIN, "--epochs", "1", "--out", str(tmp_path),
                 "--poison", spec])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and word in err


def test_remove_needs_a_poisoned_run(tmp_path, capsys):
    assert main(["--quiet", "train", *TRAIN, "--epochs", "1", "--out", str(tmp_path),
                 "--name", "c"]) == 0  # fmt: skip
    code = main(["--quiet", "backdoor", "remove", "--ckpt", str(tmp_path / "c"),
                 "--out", str(tmp_path)])  # fmt: skip
    assert code == 2 and "--poison" in capsys.readouterr().err
