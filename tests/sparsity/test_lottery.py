"""Iterative magnitude pruning with rewinding: counts, nesting, rewinding, controls, resume."""

import json

import pytest
import torch

from sparta.io import read_checkpoint
from sparta.sparsity.lottery import (
    LotteryConfig,
    kept_fraction,
    lottery,
    prune_level,
    random_masks_like,
)
from sparta.train import Callback, TrainConfig

CFG = dict(
    dataset="digits",
    model="lenet300",
    width=0.5,
    epochs=2,
    batch_size=64,
    lr=0.05,
    keep_checkpoints=5,
)
SHAPES = {"fc1.weight": (60, 64), "fc2.weight": (20, 60), "fc3.weight": (10, 20)}


def _iterated(n: int, rate: float, levels: int) -> int:
    for _ in range(levels):
        n = round(n * (1 - rate))
    return n


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_counts_follow_the_product_formula_and_masks_nest(scope):
    g = torch.Generator().manual_seed(0)
    masks = {n: torch.ones(s, dtype=torch.bool) for n, s in SHAPES.items()}
    out, levels = "fc3.weight", 6
    for _ in range(levels):
        weights = {n: torch.randn(s, generator=g) for n, s in SHAPES.items()}
        new = prune_level(weights, masks, 0.2, 0.1, scope, out)
        assert all(not (new[n] & ~masks[n]).any() for n in masks), "masks must nest"
        # the largest surviving weights are kept
        for n in masks:
            kept = weights[n].abs()[new[n]]
            dropped = weights[n].abs()[masks[n] & ~new[n]]
            if scope == "layer" and dropped.numel() and kept.numel():
                assert kept.min() >= dropped.max()
        masks = new
    counts = {n: int(m.sum()) for n, m in masks.items()}
    assert counts[out] == _iterated(200, 0.1, levels)
    if scope == "layer":
        assert counts == {
            n: _iterated(s[0] * s[1], 0.2 if n != out else 0.1, levels) for n, s in SHAPES.items()
        }
    else:
        assert counts["fc1.weight"] + counts["fc2.weight"] == _iterated(64 * 60 + 60 * 20, 0.2, 6)
    total = sum(s[0] * s[1] for s in SHAPES.values())
    formula = ((64 * 60 + 60 * 20) * 0.8**levels + 200 * 0.9**levels) / total
    assert kept_fraction(masks) == sum(counts.values()) / total
    assert abs(kept_fraction(masks) - formula) <= 3 * levels / total


def test_global_scope_without_output_rate_ranks_every_layer_together():
    w = {"a": torch.tensor([5.0, 4.0, 3.0]), "b": torch.tensor([2.0, 1.0])}
    m = {n: torch.ones_like(t, dtype=torch.bool) for n, t in w.items()}
    new = prune_level(w, m, 0.4, None, "global", "b")
    assert new["a"].tolist() == [True, True, True] and new["b"].tolist() == [False, False]


def test_random_masks_keep_per_layer_counts():
    g = torch.Generator().manual_seed(1)
    masks = {n: torch.rand(s, generator=g) < 0.3 for n, s in SHAPES.items()}
    rnd = random_masks_like(masks, seed=5)
    assert {n: int(m.sum()) for n, m in rnd.items()} == {n: int(m.sum()) for n, m in masks.items()}
    assert any(not torch.equal(rnd[n], masks[n]) for n in masks)
    assert all(torch.equal(rnd[n], m) for n, m in random_masks_like(masks, seed=5).items())


class _Starts(Callback):
    """Records each unit's weights when training starts, and checks zeros after each step."""

    name = "starts"

    def __init__(self) -> None:
        self.states: dict[str, dict[str, torch.Tensor]] = {}
        self.at_step: dict[str, dict[str, torch.Tensor]] = {}

    def on_fit_start(self, trainer):
        key = "/".join(trainer.run.path.parts[-2:])
        self.states[key] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    def after_step(self, trainer):
        for name, buf in trainer.model.state_dict().items():
            if name.endswith("_mask"):
                w = trainer.model.state_dict()[name[: -len("_mask")]]
                assert not w[~buf].any(), "a pruned weight became non-zero"
        if trainer.step == 3 and "level_00" in str(trainer.run.path):
            self.at_step["3"] = {k: v.clone() for k, v in trainer.model.state_dict().items()}


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    root = tmp_path_factory.mktemp("lottery")
    rec = _Starts()
    res = lottery(TrainConfig(**CFG), levels=2, rate=0.3, root=root, name="full", callbacks=[rec])
    return res, rec


def _masks(run, level):
    return read_checkpoint(run.path / "levels" / f"level_{level:02d}" / "mask.safetensors")[0]


def _check_rewound(start, masks, point):
    for name, value in point.items():
        if name in masks:
            m = masks[name]
            assert torch.equal(start[name][m], value[m]), f"{name} survivors not rewound"
            assert not start[name][~m].any()
            assert torch.equal(start[name + "_mask"], m)
        else:
            assert torch.equal(start[name], value), name


def test_levels_table_masks_and_rewinding(full):
    res, rec = full
    assert [r["level"] for r in res.levels] == [0, 1, 2]
    assert set(res.levels[0]) == {"level", "remaining", "test_acc"}
    assert set(res.levels[2]) == {"level", "remaining", "test_acc", "reinit_acc", "random_acc"}
    m1, m2 = _masks(res.run, 1), _masks(res.run, 2)
    assert all(not (m2[n] & ~m1[n]).any() for n in m1)
    sizes = {n: m.numel() for n, m in m1.items()}
    expect = {n: _iterated(k, 0.15 if n == "fc3.weight" else 0.3, 2) for n, k in sizes.items()}
    assert {n: int(m.sum()) for n, m in m2.items()} == expect
    assert res.levels[2]["remaining"] == sum(expect.values()) / sum(sizes.values())
    init = read_checkpoint(res.run.file("rewind.safetensors"))[0]
    assert all(torch.equal(init[k], v) for k, v in rec.states["level_00/ticket"].items())
    for level, masks in ((1, m1), (2, m2)):
        _check_rewound(rec.states[f"level_{level:02d}/ticket"], masks, init)
    summary = json.loads(res.run.file("summary.json").read_text())
    assert summary["levels"] == res.levels and summary["test_acc"] == res.levels[-1]["test_acc"]
    assert summary["sparsity"] == pytest.approx(1 - res.levels[-1]["remaining"])


def test_controls_share_or_match_the_mask(full):
    res, rec = full
    init = read_checkpoint(res.run.file("rewind.safetensors"))[0]
    for level in (1, 2):
        masks = _masks(res.run, level)
        reinit = rec.states[f"level_{level:02d}/reinit"]
        random = rec.states[f"level_{level:02d}/random"]
        for n, m in masks.items():
            assert torch.equal(reinit[n + "_mask"], m)
            assert not torch.equal(reinit[n][m], init[n][m])
            assert int(random[n + "_mask"].sum()) == int(m.sum())
            assert not torch.equal(random[n + "_mask"], m)
            r = random[n + "_mask"]
            assert torch.equal(random[n][r], init[n][r]) and not random[n][~r].any()


def test_pruned_weights_stay_zero_in_trained_units(full):
    res, _ = full
    for path in res.run.path.glob("levels/level_0[12]/*/model.safetensors"):
        t = read_checkpoint(path)[0]
        for name in [k for k in t if k.endswith("_mask")]:
            assert not t[name[: -len("_mask")]][~t[name]].any(), path


def test_late_rewinding_restores_the_step_k_state(tmp_path):
    rec = _Starts()
    res = lottery(
        TrainConfig(**CFG), levels=1, rewind_step=3, controls="none", root=tmp_path, callbacks=[rec]
    )
    point = read_checkpoint(res.run.file("rewind.safetensors"))[0]
    assert all(torch.equal(point[k], v) for k, v in rec.at_step["3"].items())
    assert not all(torch.equal(point[k], v) for k, v in rec.states["level_00/ticket"].items())
    _check_rewound(rec.states["level_01/ticket"], _masks(res.run, 1), point)
    assert set(res.levels[1]) == {"level", "remaining", "test_acc"}


class _Crash(Callback):
    name = "crash"

    def on_epoch_start(self, trainer):
        if "level_01/ticket" in str(trainer.run.path) and trainer.epoch == 1:
            raise RuntimeError("simulated kill")


def test_killed_run_resumes_inside_the_level_and_skips_finished_units(full, tmp_path):
    ref, _ = full
    args = dict(levels=2, rate=0.3, root=tmp_path, name="killed")
    with pytest.raises(RuntimeError, match="simulated kill"):
        lottery(TrainConfig(**CFG), **args, callbacks=[_Crash()])
    run = tmp_path / "killed"
    stamps = {p: p.stat().st_mtime_ns for p in run.glob("levels/level_0*/**/*.safetensors")}
    assert (run / "levels/level_01/ticket/checkpoints/epoch_0001.safetensors") in stamps
    assert not (run / "levels/level_01/ticket/summary.json").exists()
    with pytest.raises(ValueError, match="exists"):
        lottery(TrainConfig(**CFG), **args)
    res = lottery(TrainConfig(**CFG), **args, resume=True)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items()), "finished work was redone"
    assert res.levels == ref.levels
    epochs = [
        json.loads(x)["epoch"]
        for x in (run / "levels/level_01/ticket/metrics.jsonl").read_text().splitlines()
    ]
    assert epochs == [1, 2]
    # a finished run is skipped entirely
    before = {p: p.stat().st_mtime_ns for p in run.glob("levels/**/*.safetensors")}
    assert lottery(TrainConfig(**CFG), **args, resume=True).levels == ref.levels
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    with pytest.raises(ValueError, match="rate=0.3"):
        lottery(TrainConfig(**CFG), **{**args, "rate": 0.5}, resume=True)


@pytest.mark.parametrize(
    "kw,needle",
    [
        (dict(levels=0), "levels=0"),
        (dict(rate=1.0), "rate=1.0"),
        (dict(rate=0.0), "rate=0.0"),
        (dict(rewind_step=-1), "rewind_step=-1"),
        (dict(controls="reinit,shuffle"), "shuffle"),
        (dict(scope="erk"), "scope='erk'"),
    ],
)
def test_bad_options_name_the_value(kw, needle):
    with pytest.raises(ValueError, match=needle):
        LotteryConfig(**kw)


def test_rewind_beyond_the_dense_run_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="rewind_step=10000 is beyond"):
        lottery(TrainConfig(**CFG), levels=1, rewind_step=10_000, root=tmp_path)
    assert not any(tmp_path.iterdir())


def test_controls_parse():
    assert LotteryConfig(controls="none").control_list == ()
    assert LotteryConfig(controls="random,reinit").control_list == ("reinit", "random")
    assert LotteryConfig(controls=()).controls == "none"
