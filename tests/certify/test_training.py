"""IBP certified training: the objective, the eps/kappa ramp, and that it certifies more."""

import pytest
import torch
import torch.nn.functional as F

from sparta import data as sdata
from sparta import models
from sparta.certify.training import (
    IBPSchedule,
    IBPTraining,
    parse_steps,
    ramp_values,
    verified_fraction,
    worst_case_logits,
)
from sparta.train import TrainConfig, Trainer, create_objective


def _digits():
    train = sdata.load("digits", "train").take(512, seed=0)
    test = sdata.load("digits", "test").take(200, seed=0)
    return train, test


def _model(info):
    torch.manual_seed(0)
    return models.create("lenet300", dataset=info, hidden=(64, 32))


def test_ibp_training_raises_verified_accuracy_over_standard_training():
    train, test = _digits()
    eps, cfg = 0.05, TrainConfig(epochs=8, batch_size=64, lr=0.05, val_fraction=0.0, seed=0)
    standard = _model(train.info)
    Trainer(standard, train, cfg, quiet=True).fit()
    certified = _model(train.info)
    obj = IBPTraining(eps)
    sched = IBPSchedule(obj, eps, warmup="1ep", ramp="3ep")
    history = Trainer(certified, train, cfg, objective=obj, callbacks=[sched], quiet=True).fit()
    assert history[-1]["cert_eps"] == eps and history[-1]["cert_kappa"] == 0.5
    assert history[0]["cert_eps"] < eps  # still ramping after the first epoch
    v_std, v_ibp = verified_fraction(standard, test, eps), verified_fraction(certified, test, eps)
    assert v_ibp > v_std + 0.2, (v_std, v_ibp)


def test_objective_mixes_clean_and_worst_case_losses_differentiably():
    train, _ = _digits()
    model = _model(train.info)
    x, y = train.x[:16], train.y[:16]
    obj = create_objective("ibp", eps=0.02, kappa=0.25)
    loss, logits = obj(model, x, y)
    worst = worst_case_logits(model, x, y, 0.02)
    expected = 0.25 * F.cross_entropy(model(x), y) + 0.75 * F.cross_entropy(worst, y)
    assert torch.allclose(loss, expected)
    assert torch.equal(worst.gather(1, y[:, None]), torch.zeros(16, 1))
    assert F.cross_entropy(worst, y).item() >= F.cross_entropy(model(x), y).item()
    loss.backward()
    assert model.fc1.weight.grad is not None and model.fc1.weight.grad.abs().sum() > 0
    # at eps 0 the worst case is the clean loss (up to the shift by z_y)
    clean, _ = IBPTraining(0.0, 0.5)(model, x, y)
    assert torch.allclose(clean, F.cross_entropy(model(x), y))
    assert torch.allclose(
        F.cross_entropy(worst_case_logits(model, x, y, 0.0), y), F.cross_entropy(model(x), y)
    )


def test_ramp_is_linear_after_the_warmup():
    assert ramp_values(0, 0.1, 0.5, warmup=10, ramp=20) == (0.0, 1.0)
    assert ramp_values(9, 0.1, 0.5, warmup=10, ramp=20) == (0.0, 1.0)
    e, k = ramp_values(20, 0.1, 0.5, warmup=10, ramp=20)
    assert e == pytest.approx(0.05) and k == pytest.approx(0.75)
    assert ramp_values(30, 0.1, 0.5, 10, 20) == pytest.approx((0.1, 0.5))
    assert ramp_values(10**6, 0.1, 0.5, 10, 20) == pytest.approx((0.1, 0.5))
    assert ramp_values(0, 0.1, 0.5, 0, 0) == pytest.approx((0.1, 0.5))


def test_step_lengths_and_defaults():
    assert parse_steps("2ep", 50) == 100 and parse_steps("0.5ep", 50) == 25
    assert parse_steps("300it", 50) == 300 and parse_steps(3, 50) == 150
    with pytest.raises(ValueError, match="ramp='five'"):
        parse_steps("five", 50, "ramp")
    sched = IBPSchedule(IBPTraining(0.1), 0.1)
    assert sched.resolve(100, 6000) == (200, 1000)  # Gowal et al.: 2K and 10K of 60K steps
    with pytest.raises(ValueError, match="kappa_end="):
        IBPSchedule(IBPTraining(0.1), 0.1, kappa_end=1.5)
    with pytest.raises(ValueError, match="eps="):
        IBPTraining(-0.1)


QUICK = ["--dataset", "digits", "--model", "lenet300", "--width", "0.25", "--epochs", "2"]
QUICK += ["--batch-size", "64", "--lr", "0.05", "--train-subset", "400"]


def test_cli_cert_ibp_logs_verified_accuracy_and_selects_by_it(tmp_path, capsys):
    import json

    import yaml

    from sparta.cli import main

    flags = ["--cert", "ibp", "--cert-eps", "0.05", "--cert-ramp", "1ep", "--cert-val-n", "30"]
    code = main(["--quiet", "train", *QUICK, *flags, "--out", str(tmp_path), "--name", "c"])
    assert code == 0, capsys.readouterr()
    run = tmp_path / "c"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["cert_eps"] for r in rows] == [0.05, 0.05]
    assert all(0 <= r["val_verified_acc"] <= 1 for r in rows)
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["cert"] == "ibp" and config["best_metric"] == "val_verified_acc"


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--cert-eps", "0.2"], "cert_eps=0.2 is not allowed without --cert"),
        (["--cert", "ibp", "--cert-kappa", "2"], "cert_kappa=2.0"),
        (["--cert", "ibp", "--cert-ramp", "soon"], "cert_ramp='soon'"),
        (["--cert", "ibp", "--noise-sigma", "0.25"], "noise_sigma=0.25"),
        (["--cert", "ibp", "--adv", "pgd"], "--adv"),
    ],
)
def test_cli_cert_bad_values_exit_2(flags, match, tmp_path, capsys):
    from sparta.cli import main

    code = main(["--quiet", "train", *QUICK, *flags, "--out", str(tmp_path)])
    assert code == 2
    assert match in capsys.readouterr().err
