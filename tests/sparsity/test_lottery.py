"""Iterative magnitude pruning with rewinding: counts, nesting, rewinding, controls, resume."""

import json

import pytest
import torch
import yaml
from torch import nn

from sparta import data, models
from sparta.io import read_checkpoint, restore_model
from sparta.sparsity.criteria import score
from sparta.sparsity.export import channel_fraction, kept_channels
from sparta.sparsity.groups import channel_groups
from sparta.sparsity.lottery import (
    LotteryConfig,
    imp,
    imp_masks,
    kept_fraction,
    lottery,
    random_masks_like,
    run_lottery,
)
from sparta.sparsity.masks import attach, masks_of
from sparta.train import Callback, TrainConfig, load_splits

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


class _Three(nn.Module):
    def __init__(self, shapes=SHAPES):
        super().__init__()
        for name, (o, i) in shapes.items():
            self.add_module(name.split(".")[0], nn.Linear(i, o, bias=False))


@pytest.mark.parametrize("scope", ["uniform", "layer", "global"])
def test_counts_follow_the_product_formula_and_masks_nest(scope):
    g = torch.Generator().manual_seed(0)
    model = _Three()
    masks = {n: torch.ones(s, dtype=torch.bool) for n, s in SHAPES.items()}
    out, levels = "fc3.weight", 6
    for _ in range(levels):
        weights = {n: torch.randn(s, generator=g) for n, s in SHAPES.items()}
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(weights[n])
        new = imp_masks(model, 0.2, output_rate=0.1, distribution=scope)
        assert all(not (new[n] & ~masks[n]).any() for n in masks), "masks must nest"
        # the largest surviving weights are kept
        for n in masks:
            kept = weights[n].abs()[new[n]]
            dropped = weights[n].abs()[masks[n] & ~new[n]]
            if scope != "global" and dropped.numel() and kept.numel():
                assert kept.min() >= dropped.max()
        masks = new
        attach(model, masks)
    counts = {n: int(m.sum()) for n, m in masks.items()}
    assert counts[out] == _iterated(200, 0.1, levels)
    if scope != "global":
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
    model = _Three({"a.weight": (3, 1), "b.weight": (2, 1)})
    with torch.no_grad():
        model.a.weight.copy_(torch.tensor([[5.0], [4.0], [3.0]]))
        model.b.weight.copy_(torch.tensor([[2.0], [1.0]]))
    new = imp_masks(model, 0.4, distribution="global")
    assert new["a.weight"].flatten().tolist() == [True, True, True]
    assert new["b.weight"].flatten().tolist() == [False, False]


def test_erk_distribution_prunes_the_pool_by_erk_and_nests():
    model = _Three()
    first = imp_masks(model, 0.5, distribution="erk")
    attach(model, first)
    second = imp_masks(model, 0.5, distribution="erk")
    assert all(not (second[n] & ~first[n]).any() for n in first)
    total = sum(m.numel() for m in first.values())
    assert sum(int(m.sum()) for m in second.values()) == pytest.approx(0.25 * total, abs=3)
    densities = {n: float(m.float().mean()) for n, m in second.items()}
    assert densities["fc3.weight"] > densities["fc1.weight"]  # ERK: small layers denser


def test_imp_masks_rank_by_any_criterion_snip():
    """IMP with SNIP scores: within each layer every kept weight has a SNIP score at least
    as large as every pruned one, and the masks differ from magnitude's."""
    train = data.load("digits", "train")
    torch.manual_seed(0)
    model = models.create("lenet300", dataset=train.info, width=0.5)
    snip = imp_masks(model, 0.5, method="snip", data=train, output_rate=None)
    mag = imp_masks(model, 0.5)
    scores = score("snip", model, {n: p for n, p in model.named_parameters() if n in snip}, train)
    for n, m in snip.items():
        assert scores[n][m].min() >= scores[n][~m].max()
    assert any(not torch.equal(snip[n], mag[n]) for n in snip)


def test_imp_loop_rewinds_trains_and_nests():
    model = _Three()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    trained_levels = []

    def train(ticket, level):
        trained_levels.append(level)
        with torch.no_grad():  # "training": every weight moves
            for p in ticket.parameters():
                p.add_(1.0)
        attach(ticket, masks_of(ticket))  # keep pruned entries at zero

    def prune(ticket, level):
        return imp_masks(ticket, 0.5, output_rate=None)

    seen = list(imp(model, 3, prune, train=train))
    assert [lv.level for lv in seen] == [0, 1, 2, 3] and trained_levels == [0, 1, 2, 3]
    assert seen[0].masks == {}
    for prev, cur in zip(seen[1:], seen[2:], strict=False):
        assert all(not (cur.masks[n] & ~prev.masks[n]).any() for n in cur.masks)
    for lv in seen[1:]:
        for n, m in lv.masks.items():  # survivors start at the init (then +1 from training)
            w = lv.ticket.state_dict()[n]
            assert torch.equal(w[m], init[n][m] + 1.0) and not w[~m].any()
    assert kept_fraction(seen[3].masks) == pytest.approx(0.125, abs=0.01)


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
    # a folder made when late-rewound levels retrained from step 0 is not resumed silently
    config = res.run.read_config()
    assert config["rewind_retrain"] == "from_step_k"
    del config["rewind_retrain"]
    res.run.config_file.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match="rewind_retrain='from_step_0'"):
        lottery(TrainConfig(**CFG), levels=1, rewind_step=3, controls="none", root=tmp_path,
                name=res.run.path.name, resume=True)  # fmt: skip


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
        (dict(scope="diagonal"), "scope='diagonal'"),
        (dict(structure="nm:2:4"), "structure='nm:2:4'"),
        (dict(method="nope"), "'nope' is not known"),
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


class _Steps(Callback):
    """Counts each unit's optimizer steps, its first step number and the lr of each step."""

    name = "steps"

    def __init__(self) -> None:
        self.count: dict[str, int] = {}
        self.first: dict[str, int] = {}
        self.lrs: dict[str, dict[int, float]] = {}

    def after_step(self, trainer):
        key = "/".join(trainer.run.path.parts[-2:])
        self.count[key] = self.count.get(key, 0) + 1
        self.first.setdefault(key, trainer.step)
        self.lrs.setdefault(key, {})[trainer.step] = trainer.optimizer.param_groups[0]["lr"]


def test_late_rewinding_trains_each_level_from_step_k_to_the_end(tmp_path):
    """1912.05671: a level rewound to step k trains steps k+1..T of the same schedule."""
    k, rec = 7, _Steps()  # k is not a multiple of the steps per epoch
    cfg = TrainConfig(**{**CFG, "schedule": "cosine"})
    res = lottery(cfg, levels=2, rewind_step=k, controls="reinit", root=tmp_path, callbacks=[rec])
    total = rec.count["level_00/ticket"]
    assert total > k and total % 2 == 0 and k % (total // 2) != 0  # 2 epochs
    units = ["level_01/ticket", "level_01/reinit", "level_02/ticket", "level_02/reinit"]
    for unit in units:
        assert rec.count[unit] == total - k, unit
        assert rec.first[unit] == k + 1, unit
        # the learning rate continues the dense run's schedule from step k
        assert rec.lrs[unit] == {t: rec.lrs["level_00/ticket"][t] for t in range(k + 1, total + 1)}
    assert [r["level"] for r in res.levels] == [0, 1, 2]


def test_imp_with_snip_scores_runs_as_a_lottery(tmp_path):
    cfg = TrainConfig(**{**CFG, "epochs": 1})
    res = lottery(
        cfg,
        levels=1,
        rate=0.5,
        controls="none",
        method="snip",
        root=tmp_path,
        name="snip",
    )
    masks = _masks(res.run, 1)
    dense = models.create("lenet300", dataset=data.load("digits", "train").info, width=0.5)
    restore_model(
        dense, *read_checkpoint(res.run.path / "levels/level_00/ticket/model.safetensors")
    )
    train = load_splits(cfg).train  # the data the run scored on (validation split held out)
    expect = imp_masks(dense, 0.5, output_rate=0.25, method="snip", data=train)
    assert all(torch.equal(masks[n], expect[n]) for n in expect)
    assert res.run.read_config()["method"] == "snip"


def test_imp_on_channels_prunes_the_remaining_channels_and_keeps_the_controls_structured(
    tmp_path,
):
    cfg = TrainConfig(**{**CFG, "model": "conv2", "width": 0.25, "epochs": 1})
    rec = _Starts()
    res = lottery(
        cfg, levels=2, rate=0.5, structure="channel", root=tmp_path, name="ch", callbacks=[rec]
    )
    info = data.load("digits", "train").info
    fractions = []
    for level in (1, 2):
        model = models.create("conv2", dataset=info, width=0.25)
        attach(model, _masks(res.run, level))
        fractions.append(channel_fraction(model))
        random = models.create("conv2", dataset=info, width=0.25)
        attach(
            random,
            {
                k[: -len("_mask")]: v
                for k, v in rec.states[f"level_{level:02d}/random"].items()
                if k.endswith("_mask")
            },
        )
        groups = channel_groups(model)
        ticket_keep, random_keep = kept_channels(model, groups), kept_channels(random, groups)
        assert [int(k.sum()) for k in ticket_keep] == [int(k.sum()) for k in random_keep]
        assert any(not torch.equal(a, b) for a, b in zip(ticket_keep, random_keep, strict=True))
    assert fractions[0] == pytest.approx(0.5, abs=0.1)
    assert fractions[1] == pytest.approx(0.75, abs=0.1)
    m1, m2 = _masks(res.run, 1), _masks(res.run, 2)
    assert all(not (m2[n] & ~m1[n]).any() for n in m1)


# ------------------------------------------------------------------ robust / certified tickets
class _Objectives(Callback):
    """Records, per unit, the objective its Trainer trains with."""

    name = "objectives"

    def __init__(self) -> None:
        self.seen: dict[str, object] = {}

    def on_fit_start(self, trainer):
        self.seen["/".join(trainer.run.path.parts[-2:])] = trainer.objective


class _Counting:
    """Cross-entropy that counts the batches it is called on."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, model, x, y):
        self.calls += 1
        logits = model(x)
        return nn.functional.cross_entropy(logits, y), logits


def test_every_unit_trains_with_a_fresh_objective_from_the_setup(tmp_path):
    made = []

    def setup(cfg, splits):
        made.append(_Counting())
        return made[-1], ()

    rec = _Objectives()
    cfg = TrainConfig(**CFG)
    res = run_lottery(
        cfg, LotteryConfig(levels=2, rate=0.3, controls="reinit"), root=tmp_path, name="spy",
        callbacks=[rec], setup=setup, extra_config={"objective": "counting"},
    )  # fmt: skip
    units = ["level_00/ticket", "level_01/ticket", "level_01/reinit"]
    units += ["level_02/ticket", "level_02/reinit"]
    assert list(rec.seen) == units
    assert [rec.seen[u] for u in units] == made  # one fresh objective per unit, in order
    steps = -(-len(load_splits(cfg).train) // cfg.batch_size) * cfg.epochs
    assert [o.calls for o in made] == [steps] * len(units)
    assert res.run.read_config()["objective"] == "counting"


def test_robust_lottery_trains_every_level_with_pgd_at_and_keeps_exact_sparsity(tmp_path):
    rec = _Objectives()
    opts = {"eps": 0.1, "steps": 2}
    res = lottery(
        TrainConfig(**CFG), levels=2, rate=0.3, rewind_step=3, controls="random", root=tmp_path,
        callbacks=[rec], objective="pgd-at", objective_options=opts,
    )  # fmt: skip
    assert len(rec.seen) == 5
    assert {type(o).__name__ for o in rec.seen.values()} == {"PGDAdversarialTraining"}
    assert all(o.eps == 0.1 and o.steps == 2 for o in rec.seen.values())
    config = res.run.read_config()
    assert config["objective"] == "pgd-at" and config["objective_options"] == opts
    for level in (1, 2):
        masks = _masks(res.run, level)
        expect = {
            n: _iterated(m.numel(), 0.15 if n == "fc3.weight" else 0.3, level)
            for n, m in masks.items()
        }
        assert {n: int(m.sum()) for n, m in masks.items()} == expect
        t = read_checkpoint(res.run.path / f"levels/level_{level:02d}/ticket/model.safetensors")[0]
        assert all(not t[n][~m].any() for n, m in masks.items())  # pruned stay zero
        assert {n: int(t[n + "_mask"].sum()) for n in masks} == expect
    # the objective is part of the run's identity: another one is another folder
    plain = lottery(TrainConfig(**CFG), levels=1, controls="none", root=tmp_path)
    assert plain.run.path != res.run.path
    with pytest.raises(ValueError, match="objective"):
        lottery(TrainConfig(**CFG), levels=2, rate=0.3, rewind_step=3, controls="random",
                root=tmp_path, name=res.run.path.name, resume=True)  # fmt: skip


def test_unknown_objective_fails_before_any_folder(tmp_path):
    with pytest.raises(ValueError, match="nope"):
        lottery(TrainConfig(**CFG), levels=1, root=tmp_path, objective="nope")
    assert not any(tmp_path.iterdir())


def test_killed_robust_lottery_resumes_to_the_same_weights(tmp_path):
    args = dict(levels=1, rate=0.3, controls="none", root=tmp_path, objective="pgd-at",
                objective_options={"eps": 0.1, "steps": 2})  # fmt: skip
    ref = lottery(TrainConfig(**CFG), **args, name="ref")
    with pytest.raises(RuntimeError, match="simulated kill"):
        lottery(TrainConfig(**CFG), **args, name="killed", callbacks=[_Crash()])
    assert not (tmp_path / "killed/levels/level_01/ticket/summary.json").exists()
    res = lottery(TrainConfig(**CFG), **args, name="killed", resume=True)
    assert res.levels == ref.levels
    a = read_checkpoint(ref.run.path / "levels/level_01/ticket/model.safetensors")[0]
    b = read_checkpoint(res.run.path / "levels/level_01/ticket/model.safetensors")[0]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
