"""Trojan tickets (sparsity + backdoor): the Trojan score (LMC error barrier) on hand-made
cases, the IMP levels of detect(), the verdict, and the plot of a run folder."""

import copy

import pytest
import torch
from torch import nn

from sparta import data, models
from sparta.backdoor import asr
from sparta.data import DatasetInfo, ImageDataset
from sparta.experiments.trojan import (
    DetectOptions,
    barrier,
    detect,
    error_curve,
    interpolate,
    noise_data,
)
from sparta.report.trojan import plot_detection_run
from sparta.runs import Run
from sparta.sparsity import masks_of
from sparta.sparsity.lottery import kept_fraction


def test_barrier_by_hand():
    curve = [{"err": e, "loss": 0.0} for e in (0.1, 0.5, 0.7, 0.2)]
    assert barrier(curve) == pytest.approx(0.7 - (0.1 + 0.2) / 2)
    assert barrier([{"err": e} for e in (0.2, 0.2, 0.2)]) == 0.0
    assert barrier([{"err": e} for e in (0.3, 0.1, 0.3)]) == pytest.approx(0.0)  # a valley


def test_interpolate_keeps_masks_and_mixes_floats():
    a = {"w": torch.tensor([1.0, 3.0]), "w_mask": torch.tensor([True, False]), "n": torch.tensor(2)}
    b = {"w": torch.tensor([3.0, 1.0]), "w_mask": torch.tensor([False, True]), "n": torch.tensor(5)}
    mid = interpolate(a, b, 0.25)
    assert torch.equal(mid["w"], torch.tensor([1.5, 2.5]))
    assert torch.equal(mid["w_mask"], a["w_mask"]) and int(mid["n"]) == 2


def test_error_curve_between_a_model_and_its_negation():
    """Logits W x and -W x: right everywhere at t=0, wrong at t=1, all-zero logits at t=1/2
    (ties go to class 0: half the data wrong)."""
    info = DatasetInfo("toy", (1, 1, 2), 2, (0.0,), (1.0,))
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 4).view(-1, 1, 1, 2)
    ds = ImageDataset(x, torch.tensor([0, 1] * 4), info)
    a = nn.Sequential(nn.Flatten(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        a[1].weight.copy_(torch.eye(2))
    b = copy.deepcopy(a)
    with torch.no_grad():
        b[1].weight.mul_(-1)
    curve = error_curve(a, b, ds, bins=2)
    assert [p["err"] for p in curve] == [0.0, 0.5, 1.0]
    assert barrier(curve) == pytest.approx(1.0 - (0.0 + 1.0) / 2)


def test_detect_levels_prune_twenty_percent_and_leave_model_alone():
    train = data.load("synthetic", "train", n=256, shape=(1, 8, 8), num_classes=4, seed=0)
    torch.manual_seed(0)
    model = models.create("lenet300", dataset=train.info, width=0.25)
    before = copy.deepcopy(model.state_dict())
    opts = DetectOptions(rounds=2, retrain_epochs=1, batch_size=32, finetune_steps=3,
                         score_batches=2, recover_steps=5, recover_n=10)  # fmt: skip
    res = detect(model, train, opts, test=train)
    assert [r["level"] for r in res.levels] == [0, 1, 2]
    rem = [r["remaining"] for r in res.levels]
    assert rem[0] == 1.0 and rem[1] == pytest.approx(0.8, abs=0.02)
    assert rem[2] == pytest.approx(0.64, abs=0.02)
    assert res.best_level in (1, 2)  # the winning ticket is sparse
    assert res.score == max(r["score"] for r in res.levels[1:])
    assert kept_fraction(masks_of(res.ticket)) == pytest.approx(rem[res.best_level])
    assert set(res.recoveries) == {"dense", "ticket"}
    assert res.trojan == (res.target is not None) == (res.anomaly_index > opts.threshold)
    dense, ticket = res.recoveries["dense"].anomaly, res.recoveries["ticket"].anomaly
    assert res.stable_anomaly == [min(a, b) for a, b in zip(dense, ticket, strict=True)]
    if res.trojan:  # a flagged target is flagged by both recoveries
        assert res.target in res.recoveries["dense"].flagged
        assert res.target in res.recoveries["ticket"].flagged
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert not masks_of(model)


def test_detect_tickets_match_the_one_imp_loop():
    """detect() prunes exactly what the IMP loop with magnitude scores prunes: replaying
    sparta.sparsity.lottery.imp with the same retraining gives the same level-1 mask."""
    from sparta.sparsity.lottery import imp, imp_masks

    train = data.load("synthetic", "train", n=128, shape=(1, 8, 8), num_classes=4, seed=1)
    torch.manual_seed(0)
    model = models.create("lenet300", dataset=train.info, width=0.25)
    opts = DetectOptions(rounds=1, retrain_epochs=0, batch_size=32, finetune_steps=2,
                         score_batches=1, recover_steps=2, recover_n=4)  # fmt: skip
    res = detect(model, train, opts)
    steps = list(imp(model, 1, lambda m, _: imp_masks(m, 0.2, output_rate=0.1)))
    assert all(torch.equal(masks_of(res.ticket)[n], m) for n, m in steps[1].masks.items())
    assert res.best_level == 1 and res.levels[1]["remaining"] == kept_fraction(steps[1].masks)


def test_the_detection_plot_is_drawn_from_the_run_folder(tmp_path):
    levels = [
        {"level": 0, "remaining": 1.0, "score": 0.1, "test_acc": 0.9, "asr": 0.95},
        {"level": 1, "remaining": 0.8, "score": 0.3, "test_acc": 0.88, "asr": 0.9},
    ]
    run = Run.create({"model": "lenet300"}, "backdoor-detect", tmp_path, "det")
    run.write_summary({"trojan": True, "levels": levels})
    (path,) = plot_detection_run(run.path)
    assert path == run.file("levels.png") and path.stat().st_size > 1000
    with pytest.raises(FileNotFoundError, match="summary.json"):
        plot_detection_run(tmp_path / "missing")


def test_data_free_noise_is_labelled_by_the_model():
    info = DatasetInfo("toy", (1, 4, 4), 3, (0.5,), (0.5,))
    torch.manual_seed(0)
    model = models.create("lenet300", dataset=info, width=0.25)
    ds = noise_data(model, info, 50, seed=1)
    assert torch.equal(ds.y, model(ds.x).argmax(1))
    assert ds.x.min() >= 0 and ds.x.max() <= 1


PLANTED_OPTS = {"rounds": 1, "batch_size": 64, "finetune_steps": 5, "recover_steps": 200}


def test_detect_flags_a_planted_trigger_and_its_target(planted):
    """Verdict Trojaned, target 3, and the recovered trigger sends real test images to 3."""
    model, poisoned = planted
    opts = DetectOptions(**PLANTED_OPTS, transfer=0.5)
    res = detect(model, poisoned, opts)
    assert res.trojan and res.target == 3
    assert res.transfer[3] >= opts.transfer  # checked on the defender's own images
    assert asr(model, data.load("digits", "test"), res.trigger(), 3) > 0.5


def test_a_flagged_label_whose_trigger_does_not_transfer_is_not_a_verdict(planted):
    """transfer=1.0 demands a trigger that flips every defender image: the recovered one
    does not quite, so the verdict falls back to clean."""
    model, poisoned = planted
    strict = detect(model, poisoned, DetectOptions(**PLANTED_OPTS, transfer=1.0))
    assert 3 in strict.transfer and strict.transfer[3] < 1.0
    assert not strict.trojan and strict.target is None
