import json

import pytest
import torch

import sparta
from sparta.cli import main
from sparta.sparsity.handle import SparsityHandle
from sparta.sparsity.masks import masks_of

QUICK = [
    "--dataset", "digits", "--model", "lenet300", "--width", "0.32", "--batch-size", "64",
    "--lr", "0.05", "--train-subset", "256", "--test-subset", "100",
]  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _summary(path) -> dict:
    return json.loads((path / "summary.json").read_text())


def test_prune_at_init_then_train(tmp_path, capsys):
    args = ["--quiet", "prune", *QUICK, "--method", "snip", "--sparsity", "0.9", "--epochs", "1"]
    assert main([*args, "--scope", "erk", "--out", str(tmp_path), "--name", "p"]) == 0
    run = tmp_path / "p"
    s = _summary(run)
    assert s["epochs"] == 1 and 0 <= s["test_acc"] <= 1
    assert s["sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert 0 < s["kept_params_fraction"] < 0.2 and 0 < s["kept_macs_fraction"] < 0.2
    assert (run / "sparsity.txt").is_file() and "fc1.weight" in capsys.readouterr().out
    model = sparta.load(run)  # masks travel in the checkpoint; pruned weights are zero
    assert set(masks_of(model)) == {"fc1.weight", "fc2.weight", "fc3.weight"}
    assert SparsityHandle(model).sparsity() == s["sparsity"]
    assert "method: snip" in (run / "config.yaml").read_text()


def test_prune_a_checkpoint_without_and_with_fine_tuning(tmp_path):
    assert (
        main(["--quiet", "train", *QUICK, "--epochs", "1", "--out", str(tmp_path), "--name", "d"])
        == 0
    )
    common = ["--quiet", "prune", "--ckpt", str(tmp_path / "d"), "--out", str(tmp_path)]
    assert main([*common, "--structure", "nm:2:4", "--name", "nm"]) == 0
    s = _summary(tmp_path / "nm")
    assert s["epochs"] == 0 and s["sparsity"] == 0.5 and s["kept_macs_fraction"] == 0.5
    args = ["--structure", "block:4", "--exclude", "fc3.*", "--scope", "layer", "--epochs", "1"]
    assert main([*common, *args, "--sparsity", "0.5", "--name", "ft"]) == 0
    s = _summary(tmp_path / "ft")
    assert s["epochs"] == 1 and s["sparsity"] == 0.5
    assert "command: prune" in (tmp_path / "ft" / "config.yaml").read_text()  # not "train"
    assert set(masks_of(sparta.load(tmp_path / "ft"))) == {"fc1.weight", "fc2.weight"}


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--sparsity", "1.0"], "sparsity=1.0"),
        (["--sparsity", "-0.1"], "sparsity=-0.1"),
        (["--structure", "nm:4:2"], "N=4 > M=2"),
        (["--structure", "block:5"], "block size 5 does not divide"),
        (["--structure", "diagonal"], "'diagonal' is not known"),
        (["--include", "conv9.*"], "conv9"),
        (["--exclude", "*"], "nothing prunable"),
        (["--method", "optimal-brain-surgeon"], "optimal-brain-surgeon"),
        (["--scope", "row"], "scope='row' is not allowed"),
        (["--method", "magnitude", "--batches", "2"], "--batches"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(extra, needle, tmp_path, capsys):
    code = main(["prune", *QUICK, "--epochs", "0", *extra, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and needle in lines[0], err


def test_sparsity_zero_at_init_reproduces_sparta_train(tmp_path):
    """Same seed, same init, same batches: pruning nothing changes nothing."""
    common = [*QUICK, "--epochs", "1", "--out", str(tmp_path)]
    assert main(["--quiet", "train", *common, "--name", "t"]) == 0
    assert main(["--quiet", "prune", *common, "--sparsity", "0", "--name", "p"]) == 0
    assert _summary(tmp_path / "p")["test_loss"] == _summary(tmp_path / "t")["test_loss"]


def test_channel_pruning_records_channel_and_weight_sparsity_and_accuracy_before_training(
    tmp_path,
):
    conv = ["--dataset", "digits", "--model", "lenet5", "--train-subset", "128"]
    conv += ["--test-subset", "64", "--batch-size", "64"]
    args = ["--quiet", "prune", *conv, "--structure", "channel", "--method", "l1"]
    assert main([*args, "--sparsity", "0.5", "--epochs", "1", "--out", str(tmp_path)]) == 0
    (run,) = list(tmp_path.iterdir())
    s = _summary(run)
    model = sparta.load(run)
    handle = SparsityHandle(model)
    assert s["sparsity"] == pytest.approx(handle.channel_sparsity()) and 0.4 < s["sparsity"] < 0.6
    assert s["weight_sparsity"] == pytest.approx(handle.weight_sparsity())
    assert s["weight_sparsity"] != pytest.approx(s["sparsity"])  # two different quantities
    assert 0 <= s["pruned_test_acc"] <= 1
    # without training the accuracy right after pruning is the final one
    args0 = [*args, "--sparsity", "0.5", "--epochs", "0", "--out", str(tmp_path), "--name", "z"]
    assert main(args0) == 0
    s0 = _summary(tmp_path / "z")
    assert s0["pruned_test_acc"] == s0["test_acc"]
