import json

import pytest
from safetensors.torch import load_file

from sparta import io
from sparta.cli import main
from sparta.commands import sparse_train
from sparta.commands.sparse_train import SparseTrainOptions
from sparta.sparsity.masks import masks_of
from sparta.sparsity.schedules import current_sparsity
from sparta.train import Callback

QUICK = ["--quiet", "train", "--dataset", "digits", "--model", "lenet300", "--batch-size", "64"]
QUICK += ["--lr", "0.05", "--epochs", "3", "--update-interval", "5"]


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_train_with_rigl_end_to_end(tmp_path, capsys):
    args = [*QUICK, "--dst", "rigl", "--sparsity", "0.9", "--out", str(tmp_path), "--name", "r"]
    assert main(args) == 0
    run = tmp_path / "r"
    assert all(m["sparsity"] == pytest.approx(0.9, abs=1e-3) for m in _metrics(run))
    assert _metrics(run)[-1]["dst_updates"] == int(0.75 * 63) // 5
    model = io.load(run / "model.safetensors")
    assert current_sparsity(model) == pytest.approx(0.9, abs=1e-3)
    assert all(
        not p[~m].any()
        for n, p in model.named_parameters()
        if (m := masks_of(model).get(n)) is not None
    )
    config = (run / "config.yaml").read_text()
    assert "dst: rigl" in config and "sparsity: 0.9" in config


def test_summary_records_the_sparsity(tmp_path):
    """Needs ``sparta.train.api.train`` to copy the last epoch's ``sparsity`` metric into the
    summary, as it does for train_acc/val_acc (the lead's file)."""
    args = [*QUICK, "--dst", "set", "--sparsity", "0.9", "--epochs", "1"]
    assert main([*args, "--out", str(tmp_path), "--name", "s"]) == 0
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["sparsity"] == pytest.approx(0.9, abs=1e-3)


def test_train_with_gmp_reaches_the_sparsity(tmp_path):
    args = [*QUICK, "--gmp", "--sparsity", "0.8", "--distribution", "uniform"]
    assert main([*args, "--out", str(tmp_path), "--name", "g"]) == 0
    sparsities = [m["sparsity"] for m in _metrics(tmp_path / "g")]
    assert sparsities[0] < sparsities[-1] == pytest.approx(0.8, abs=1e-3)


class _StopAfterOneEpoch(Callback):
    name = "stopper"

    def on_epoch_end(self, t, metrics):
        t.should_stop = True


@pytest.mark.parametrize("method", ["rigl", "set"])
def test_resumed_dst_run_matches_an_uninterrupted_one_bit_exactly(method, tmp_path, monkeypatch):
    args = [*QUICK, "--dst", method, "--sparsity", "0.8", "--optimizer", "adamw", "--lr", "0.01"]
    args += ["--out", str(tmp_path)]
    assert main([*args, "--name", "full"]) == 0
    original = sparse_train.sparse_callbacks
    monkeypatch.setattr(
        sparse_train,
        "sparse_callbacks",
        lambda *a: [*original(*a), _StopAfterOneEpoch()],
    )
    assert main([*args, "--name", "cut"]) == 0
    assert [m["epoch"] for m in _metrics(tmp_path / "cut")] == [1]
    monkeypatch.setattr(sparse_train, "sparse_callbacks", original)
    assert main([*args, "--name", "cut", "--resume"]) == 0
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    full, cut = _metrics(tmp_path / "full"), _metrics(tmp_path / "cut")
    assert [m["dst_updates"] for m in full] == [m["dst_updates"] for m in cut]
    assert full[0]["dst_updates"] > 0 and full[-1]["dst_updates"] > full[0]["dst_updates"]


@pytest.mark.parametrize(
    "flags,needle",
    [
        (["--dst", "rigl", "--sparsity", "1.5"], "sparsity=1.5"),
        (["--dst", "rigl", "--sparsity", "-0.1"], "sparsity=-0.1"),
        (["--dst", "magic", "--sparsity", "0.5"], "magic"),
        (["--dst", "set", "--sparsity", "0.5", "--drop-fraction", "1.5"], "drop_fraction=1.5"),
        (["--dst", "set", "--sparsity", "0.5", "--drop-fraction", "0"], "drop_fraction=0.0"),
        (["--dst", "set"], "sparsity=0.0"),
        (["--sparsity", "0.5"], "sparsity=0.5"),
        (["--gmp", "--dst", "set", "--sparsity", "0.5"], "gmp=True"),
        (["--dst", "set", "--sparsity", "0.5", "--distribution", "global"], "distribution"),
    ],
)
def test_bad_sparse_options_print_one_line_and_exit_2(flags, needle, tmp_path, capsys):
    assert main([*QUICK, *flags, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_options_round_trip_and_reject_unknown_keys():
    opts = SparseTrainOptions(dst="set", sparsity=0.5)
    assert SparseTrainOptions.from_dict(opts.to_dict()) == opts
    with pytest.raises(ValueError, match="'sparsty'"):
        SparseTrainOptions.from_dict({"sparsty": 0.5})
    with pytest.raises(
        ValueError, match=r"sparsity=1.0 is not allowed; expected a number in \[0, 1\)"
    ):
        SparseTrainOptions(dst="rigl", sparsity=1.0)


def test_one_shot_prune_method_at_init(tmp_path):
    pytest.importorskip("sparta.sparsity.pruning")
    args = [*QUICK, "--prune-method", "magnitude", "--sparsity", "0.7", "--distribution", "global"]
    assert main([*args, "--out", str(tmp_path), "--name", "p"]) == 0
    model = io.load(tmp_path / "p" / "model.safetensors")
    assert current_sparsity(model) == pytest.approx(0.7, abs=1e-3)
