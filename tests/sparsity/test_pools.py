"""Lottery Pools: neighbour order, interpolation, the greedy search on validation only, the
target's mask kept exactly, BatchNorm re-estimation, resume, and the command line."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch
from torch import nn

import sparta
from sparta.sparsity import masks_of
from sparta.sparsity.lottery import lottery
from sparta.sparsity.pools import (
    PoolConfig,
    interpolate,
    lottery_levels,
    neighbours,
    pool_run,
    pool_tickets,
    reestimate_bn,
)
from sparta.train import Splits, evaluate, load_splits
from tests.killed_run import ENV, SPARTA

CFG = {"dataset": "digits", "model": "lenet300", "epochs": 2, "lr": 0.1, "batch_size": 64}


@pytest.fixture(scope="module")
def imp_run(tmp_path_factory):
    """A finished IMP run on digits: dense level 0 and 3 pruned levels (late rewinding)."""
    root = tmp_path_factory.mktemp("pools")
    res = lottery(CFG, levels=3, rate=0.5, rewind_step=10, controls="none", root=root, name="lt")
    return res.run.path


def test_neighbours_nearest_first_lower_level_first():
    assert neighbours(3, range(7)) == [2, 4, 1, 5, 0, 6]
    assert neighbours(0, [0, 1, 2]) == [1, 2]
    assert neighbours(3, range(7), limit=3) == [2, 4, 1]
    with pytest.raises(ValueError, match="target level 9 is not in the pool"):
        neighbours(9, [0, 1])


def test_interpolate_hand_computed_and_mask_reapplied():
    cur = {"w": torch.tensor([1.0, 2.0, 3.0]), "w_mask": torch.tensor([True, False, True]),
           "n": torch.tensor(5)}  # fmt: skip
    cand = {"w": torch.tensor([3.0, 6.0, 0.0]), "n": torch.tensor(9)}
    out = interpolate(cur, cand, 0.25, {"w": cur["w_mask"]})
    # 0.25 * cand + 0.75 * cur = [1.5, 3.0, 2.25], the pruned middle entry zeroed
    assert torch.equal(out["w"], torch.tensor([1.5, 0.0, 2.25]))
    assert torch.equal(out["w_mask"], cur["w_mask"]) and int(out["n"]) == 5
    with pytest.raises(ValueError, match="candidate ticket has no 'w'"):
        interpolate(cur, {}, 0.5, {})


def test_pool_keeps_the_target_mask_and_only_accepts_validation_gains(imp_run):
    tickets = {lv: sparta.load(p) for lv, p in lottery_levels(imp_run).items()}
    splits = load_splits(sparta.train.TrainConfig(**CFG))
    res = pool_tickets(tickets, sorted(tickets), 3, splits.val, coefficients=[0.2, 0.5, 0.8])
    target_masks = masks_of(tickets[3])
    pooled = masks_of(res.model)
    assert pooled.keys() == target_masks.keys()
    for name, m in target_masks.items():
        assert torch.equal(pooled[name], m)
        w = dict(res.model.named_parameters())[name]
        assert torch.count_nonzero(w[~m]) == 0  # pruned weights exactly zero
    assert res.order == [2, 1, 0]
    assert len(res.tries) == 9
    assert res.target_val_acc == evaluate(tickets[3], splits.val)["acc"]
    assert res.val_acc == evaluate(res.model, splits.val)["acc"] >= res.target_val_acc
    # an accepted candidate is the best try of its level, and beat everything before it
    best = res.target_val_acc
    for level in res.order:
        top = max(t["val_acc"] for t in res.tries if t["level"] == level)
        if top > best:
            assert level in [lv for lv, _ in res.accepted]
            best = top
    assert best == res.val_acc
    if not res.accepted:
        a, b = res.model.state_dict(), tickets[3].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in b)


def test_test_split_is_read_only_after_the_search(imp_run, tmp_path, monkeypatch):
    real = load_splits(sparta.train.TrainConfig(**CFG))

    class Untouchable(torch.utils.data.Dataset):
        def __len__(self):
            raise AssertionError("test split read")

        def __getitem__(self, i):
            raise AssertionError("test split read")

    monkeypatch.setattr(
        "sparta.train.load_splits", lambda cfg: Splits(real.train, real.val, Untouchable())
    )
    with pytest.raises(AssertionError, match="test split read"):
        pool_run(imp_run, PoolConfig(coefficients=[0.3, 0.6]), root=tmp_path, name="p")
    _, meta = sparta.io.read_checkpoint(tmp_path / "p" / "search.safetensors")
    assert meta["next"] == len(meta["order"]) == 3  # the whole search ran before the read


def test_search_resumes_after_a_kill_to_the_same_ticket(imp_run, tmp_path):
    tickets = {lv: sparta.load(p) for lv, p in lottery_levels(imp_run).items()}
    val = load_splits(sparta.train.TrainConfig(**CFG)).val
    kw = {"coefficients": [0.1, 0.4, 0.7, 0.9]}
    whole = pool_tickets(tickets, sorted(tickets), 2, val, **kw)
    state = tmp_path / "search.safetensors"
    seen = []

    def kill(rec):
        seen.append(rec)
        if len(seen) == 6:  # in the middle of the second candidate
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pool_tickets(tickets, sorted(tickets), 2, val, state_file=state, on_try=kill, **kw)
    assert json.loads(state.with_suffix(".json").read_text())["next"] == 1
    again = []
    resumed = pool_tickets(
        tickets, sorted(tickets), 2, val, state_file=state, on_try=again.append, **kw
    )
    assert len(again) == 8  # the first candidate was not searched again
    assert resumed.accepted == whole.accepted and resumed.tries == whole.tries
    a, b = resumed.model.state_dict(), whole.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="search state .* was made with"):
        pool_tickets(tickets, sorted(tickets), 1, val, state_file=state, **kw)


def test_reestimate_bn_gives_the_data_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(4))
    model[1].running_mean.fill_(7.0)
    x = torch.randn(300, 1, 2, 2) * 3 + 1
    ds = sparta.data.ImageDataset(x, torch.zeros(300, dtype=torch.long), sparta.data.info("digits"))
    model.eval()
    reestimate_bn(model, ds, batch_size=100)  # three batches, averaged equally
    flat = x.flatten(1)
    assert torch.allclose(model[1].running_mean, flat.mean(0), atol=1e-5)
    assert not model.training and model[1].momentum == 0.1


def test_cli_pool_and_bad_input(imp_run, tmp_path):
    out = subprocess.run(
        [*SPARTA, "pool", "--ckpt", str(imp_run), "--out", str(tmp_path), "--name", "p",
         "--coefficients", "0.5", "--candidates", "1"],
        env=ENV, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "lottery pool (accepted:" in out.stdout
    s = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert s["target_level"] == 3 and s["order"] == [2] and s["tries"] == 1
    assert 0 <= s["test_acc"] <= 1 and s["sparsity"] > 0.8
    pooled = sparta.load(tmp_path / "p")
    target = sparta.load(lottery_levels(imp_run)[3])
    assert all(torch.equal(masks_of(pooled)[k], m) for k, m in masks_of(target).items())
    for bad, msg in [
        (["--ckpt", str(tmp_path)], "is not a lottery run folder"),
        (["--ckpt", str(imp_run), "--target", "8"], "target=8 is not a finished level"),
        (["--ckpt", str(imp_run), "--coefficients", "1"], "coefficients=1.0 is not allowed"),
    ]:
        r = subprocess.run([*SPARTA, "pool", *bad, "--out", str(tmp_path), "--name", "bad"],
                           env=ENV, capture_output=True, text=True)  # fmt: skip
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "bad").exists()


def test_cli_lottery_pool_flag(tmp_path):
    args = ["--dataset", "digits", "--model", "lenet300", "--epochs", "1", "--levels", "1",
            "--rate", "0.5", "--controls", "none", "--out", str(tmp_path),
            "--name", "lt"]  # fmt: skip
    out = subprocess.run([*SPARTA, "lottery", *args, "--pool"], env=ENV, capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert "lottery pool (accepted:" in out.stdout
    assert (tmp_path / "lt" / "pool-l01" / "summary.json").is_file()
