"""APP: the progressive schedule, exact sparsities per mega-batch, warm starts, the run."""

import json

import pytest
import torch

from sparta import data as sdata
from sparta import models
from sparta.data import megabatches
from sparta.sparsity import SparsityHandle
from sparta.sparsity.anytime import (
    AnytimeConfig,
    branch_sparsities,
    progressive,
    run_anytime,
)
from sparta.sparsity.masks import masks_of
from sparta.sparsity.schedules import app_sparsities, current_sparsity
from sparta.train import TrainConfig, Trainer


def test_app_schedule_hand_computed():
    # target 1 - 0.8^4: exponents 1, 2, 3, 4 -> densities 0.8, 0.64, 0.512, 0.4096
    target = 1 - 0.8**4
    assert app_sparsities(4, target) == pytest.approx([0.2, 0.36, 0.488, target], abs=1e-12)
    assert app_sparsities(4, 0.9)[-1] == 0.9  # exactly the target at the last mega-batch
    s = app_sparsities(8, 0.95)
    assert s[0] == pytest.approx(0.2) and all(a < b for a, b in zip(s, s[1:], strict=False))
    assert app_sparsities(1, 0.7) == [0.7]
    assert app_sparsities(3, 0.1) == pytest.approx([0.1, 0.1, 0.1])  # never un-prunes
    assert app_sparsities(3, 0.0) == [0.0, 0.0, 0.0]
    assert branch_sparsities("oneshot", 3, 0.9) == [0.9] * 3
    assert branch_sparsities("dense", 2, 0.9) == [0.0, 0.0]
    with pytest.raises(ValueError, match="k=0"):
        app_sparsities(0, 0.5)
    with pytest.raises(ValueError, match="branch 'x'"):
        branch_sparsities("x", 3, 0.5)


def _stream(k=4, n=512):
    ds = sdata.load("synthetic", "train", n=n, shape=(1, 8, 8), num_classes=4, seed=0)
    return ds, megabatches(ds, k, seed=0)


@pytest.mark.parametrize("method", ["snip", "magnitude"])
def test_progressive_reaches_exactly_the_target_at_the_last_megabatch(method):
    ds, parts = _stream()
    torch.manual_seed(0)
    net = models.create("lenet300", dataset=ds.info, width=0.25)
    sched = app_sparsities(4, 0.9)
    seen, masks, entry, exit_ = [], [], [], []
    cfg = TrainConfig(dataset="synthetic", epochs=1, batch_size=32, lr=0.05, val_fraction=0.0)

    def fit(m, data, i):
        entry.append({n: p.detach().clone() for n, p in m.named_parameters()})
        seen.append(len(data))
        Trainer(m, data, cfg, callbacks=[SparsityHandle(m).callback()], quiet=True).fit()
        masks.append({n: b.clone() for n, b in masks_of(m).items()})
        exit_.append({n: p.detach().clone() for n, p in m.named_parameters()})

    got = [current_sparsity(m) for _, m in progressive(net, parts, sched, fit, method=method)]
    total = sum(b.numel() for b in masks[0].values())
    assert got[-1] == pytest.approx(0.9, abs=1.0 / total)  # the target, to one weight
    assert all(abs(g - s) <= 1.0 / total for g, s in zip(got, sched, strict=True))
    assert seen == [128, 256, 384, 512]  # replay: every mega-batch so far
    for a, b in zip(masks, masks[1:], strict=False):  # nested: pruned weights stay pruned
        assert all(not (b[n] & ~a[n]).any() for n in a)
    for i in range(1, 4):  # warm start: mega-batch i starts from i-1's weights, pruned
        for n, p in entry[i].items():
            kept = masks[i][n] if n in masks[i] else torch.ones_like(p, dtype=torch.bool)
            assert torch.equal(p[kept], exit_[i - 1][n][kept])
            assert not p[~kept].any()


def test_progressive_without_replay_trains_on_the_newest_megabatch():
    ds, parts = _stream(k=2, n=100)
    net = models.create("lenet300", dataset=ds.info, width=0.25)
    sizes = []
    for _ in progressive(
        net, parts, [0.5, 0.8], lambda m, d, i: sizes.append(len(d)), replay=False
    ):
        pass
    assert sizes == [50, 50]
    with pytest.raises(ValueError, match="2 sparsities for 3"):
        next(progressive(net, _stream(k=3, n=90)[1], [0.5, 0.8], lambda *a: None))


CFG = dict(dataset="digits", model="lenet300", epochs=1, batch_size=64, lr=0.05, train_subset=600)


def test_run_writes_curves_and_refuses_other_options_on_resume(tmp_path):
    opts = AnytimeConfig(megabatches=3, sparsity=0.8)
    res = run_anytime(TrainConfig(**CFG), opts, root=tmp_path, name="a")
    assert list(res.curves) == ["app", "oneshot", "dense"]
    assert [r["sparsity"] for r in res.curves["oneshot"]] == pytest.approx([0.8] * 3, abs=1e-4)
    assert [r["sparsity"] for r in res.curves["dense"]] == [0.0] * 3
    assert res.curves["app"][-1]["sparsity"] == pytest.approx(0.8, abs=1e-4)
    assert current_sparsity(res.model) == pytest.approx(0.8, abs=1e-4)
    s = json.loads((tmp_path / "a" / "summary.json").read_text())
    accs = [r["test_acc"] for r in s["curves"]["app"]]
    assert s["test_acc"] == accs[-1] and s["cer"] == pytest.approx(sum(1 - a for a in accs))
    assert s["anytime_acc"] == pytest.approx(sum(accs) / 3) and "dense_cer" in s
    with pytest.raises(ValueError, match=r"--sparsity 0.9 \(recorded: 0.8\)"):
        run_anytime(
            TrainConfig(**CFG), AnytimeConfig(megabatches=3, sparsity=0.9), root=tmp_path,
            name="a", resume=True,
        )  # fmt: skip
    with pytest.raises(ValueError, match="exists"):
        run_anytime(TrainConfig(**CFG), opts, root=tmp_path, name="a")


@pytest.mark.parametrize(
    "kw,needle",
    [
        (dict(megabatches=0), "megabatches=0"),
        (dict(sparsity=1.0), "sparsity=1.0"),
        (dict(sparsity=0.0), "sparsity=0.0"),
        (dict(baselines="dense,random"), "baselines='dense,random'"),
        (dict(method="nope"), "nope"),
        (dict(distribution="wide"), "wide"),
    ],
)
def test_bad_options(kw, needle):
    with pytest.raises(ValueError, match=needle):
        AnytimeConfig(**kw)
