"""Certified and robust lottery tickets: IMP levels trained with IBP / PGD-AT."""

from __future__ import annotations

import json

import pytest

from sparta.certify.training import IBPTraining
from sparta.experiments.robust_tickets import (
    certified_lottery,
    certified_setup,
    robust_lottery,
    unit_model,
)
from sparta.sparsity import masks_of
from sparta.sparsity.lottery import LotteryConfig
from sparta.train import Callback, TrainConfig

CFG = dict(dataset="digits", model="lenet300", width=0.5, epochs=2, batch_size=64, lr=0.05)


class _Seen(Callback):
    name = "seen"

    def __init__(self) -> None:
        self.objectives: dict[str, object] = {}
        self.eps: dict[str, list[float]] = {}

    def on_fit_start(self, trainer):
        self.objectives["/".join(trainer.run.path.parts[-2:])] = trainer.objective

    def after_step(self, trainer):
        key = "/".join(trainer.run.path.parts[-2:])
        self.eps.setdefault(key, []).append(trainer.objective.eps)


def test_certified_lottery_trains_every_unit_with_a_ramped_ibp(tmp_path):
    seen = _Seen()
    res = certified_lottery(
        TrainConfig(**CFG), LotteryConfig(levels=1, rate=0.5, controls="reinit"), 0.05,
        val_n=30, root=tmp_path, name="cert", callbacks=[seen],
    )  # fmt: skip
    units = ["level_00/ticket", "level_01/ticket", "level_01/reinit"]
    assert list(seen.objectives) == units
    objs = list(seen.objectives.values())
    assert all(isinstance(o, IBPTraining) for o in objs) and len({id(o) for o in objs}) == 3
    for unit in units:  # each unit ramps from 0 to the target eps on its own schedule
        eps = seen.eps[unit]
        assert eps[0] < 0.05 and eps[-1] == pytest.approx(0.05)
        assert all(a <= b for a, b in zip(eps, eps[1:], strict=False))
        rows = [json.loads(x) for x in (res.run.path / f"levels/{unit}/metrics.jsonl").open()]
        assert "val_verified_acc" in rows[-1]
    config = res.run.read_config()
    assert config["objective"] == "ibp" and config["objective_options"]["eps"] == 0.05
    ticket = unit_model(res.run.path, 1)
    assert set(masks_of(ticket)) == {"fc1.weight", "fc2.weight", "fc3.weight"}
    with pytest.raises(FileNotFoundError, match="level 2"):
        unit_model(res.run.path, 2)


def test_robust_lottery_records_its_objective(tmp_path):
    res = robust_lottery(
        TrainConfig(**{**CFG, "epochs": 1}), eps=0.1, steps=1, levels=1, controls="none",
        root=tmp_path, name="adv",
    )  # fmt: skip
    config = res.run.read_config()
    assert config["objective"] == "pgd-at"
    assert config["objective_options"] == {"eps": 0.1, "steps": 1}
    rows = (res.run.path / "levels/level_01/ticket/metrics.jsonl").read_text()
    assert "train_robust_acc" in rows


def test_bad_certified_values_fail_before_training():
    with pytest.raises(ValueError, match="kappa"):
        certified_setup(0.1, kappa=2.0)
    with pytest.raises(ValueError, match="warmup"):
        certified_setup(0.1, warmup="soon")
